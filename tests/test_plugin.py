"""The suite as a pytest plugin and a pip package: runs never destroy runs, reruns run
exactly what they name, --lf works, usage errors are usage errors, markers select, and a
wheel installs one top-level package that runs the suite from an empty folder."""
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from bn_conformance.results import load
from tests.test_hostile import interruptible

ROOT = Path(__file__).resolve().parents[1]
CLEAN = f"{ROOT / 'tests' / 'planted' / 'backends.py'}:NumpyBN"
BUGGY = f"{ROOT / 'tests' / 'planted' / 'backends.py'}:Planted_momentum_inverted"
CASES = ["train_f32_nc_16x5_normal_m0.1_e1e-05_k4_aff_trs_s0", "infer_f32_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0"]


def _pytest(*args, cwd=ROOT, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def _cases(*ids):
    return [a for c in ids for a in ("--case", c)]


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def finished_run(tmp_path):
    """A results root holding one finished run that ``latest`` names."""
    root = tmp_path / "reports"
    proc = _pytest("conformance/", "-q", "--adapter", CLEAN, *_cases(*CASES), "--results-root", str(root),
                   "--update-latest")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (root / "latest").resolve().parent == root / "runs"
    return root


@pytest.mark.parametrize("extra", [["--help"], ["--co", "-q"], ["--version"], ["--markers"]])
def test_commands_that_run_nothing_write_and_delete_nothing(finished_run, extra):
    before = _snapshot(finished_run)
    proc = _pytest("conformance/", *extra, "--results-root", str(finished_run))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert _snapshot(finished_run) == before


def test_rerun_line_runs_exactly_the_case_once_and_keeps_latest(finished_run):
    latest = (finished_run / "latest").resolve()
    case = "train_f32_nc_16x5_normal_m0.1_e1e-05_k4_aff_trs_s0"
    proc = _pytest("conformance/", "-q", "--case", case, "--adapter", BUGGY, "--results-root", str(finished_run))
    assert proc.returncode == 1
    assert "1 failed" in proc.stdout and "passed" not in proc.stdout.splitlines()[-1], proc.stdout[-1500:]
    assert (finished_run / "latest").resolve() == latest          # a partial run does not move latest
    runs = sorted((finished_run / "runs").iterdir())
    assert len(runs) == 2
    new = next(r for r in runs if r != latest)
    recs = load(new)
    assert next(r for r in recs if r["type"] == "end")["status"] == "partial"
    assert [r["case_id"] for r in recs if r["type"] == "case"] == [case]


def test_two_concurrent_runs_in_one_checkout_both_complete(tmp_path):
    root = tmp_path / "reports"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:randomly", "conformance/", "-q", "--adapter", CLEAN,
           *_cases(*CASES), "--results-root", str(root), "--no-report"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    for p in procs:
        p.communicate(timeout=600)
        assert p.returncode == 0
    runs = sorted((root / "runs").iterdir())
    assert len(runs) == 2
    for r in runs:
        recs = load(r)
        assert sum(1 for x in recs if x["type"] == "case") == 2
        assert next(x for x in recs if x["type"] == "end")["status"] == "partial"


def test_interrupted_run_keeps_finished_records_and_latest(finished_run, tmp_path):
    latest = (finished_run / "latest").resolve()
    hang = f"{ROOT / 'tests' / 'planted' / 'misbehaving.py'}:Hangs"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:randomly", "conformance/", "-q", "--adapter", hang,
           *_cases(CASES[1], CASES[0]), "--results-root", str(finished_run), "--update-latest", "--no-report"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=interruptible)
    deadline = time.time() + 120
    while time.time() < deadline:
        parts = list((finished_run / "runs").glob("*/results.*.jsonl"))
        if parts and any('"case"' in p.read_text() for p in parts):
            break
        time.sleep(0.3)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert (finished_run / "latest").resolve() == latest
    new = next(r for r in (finished_run / "runs").iterdir() if r != latest)
    recs = load(new)
    assert [r["case_id"] for r in recs if r["type"] == "case"] == [CASES[1]]
    ends = [r for r in recs if r["type"] == "end"]
    assert not ends or ends[0]["status"] == "interrupted"


def test_last_failed_selects_only_the_failures(tmp_path):
    root, cache = tmp_path / "reports", tmp_path / "cache"
    base = ["conformance/", "-q", "--adapter", BUGGY, *_cases(*CASES), "--results-root", str(root),
            "-o", f"cache_dir={cache}"]
    first = _pytest(*base)
    assert first.returncode == 1 and "1 failed, 1 passed" in first.stdout, first.stdout[-1500:]
    again = _pytest(*base, "--lf")
    assert "1 failed" in again.stdout and "passed" not in again.stdout.splitlines()[-1], again.stdout[-1500:]
    recs = [r for r in load(max((root / "runs").iterdir(), key=lambda p: p.stat().st_mtime_ns)) if r["type"] == "case"]
    assert [r["verdict"] for r in recs] == ["fail"], [r["verdict"] for r in recs]


@pytest.mark.parametrize("args,message", [
    (["--device", "gpu2"], "is not a device name"),
    (["--device", "cuda", "--adapter", "torch.nn"], "offers device cuda"),
    (["--adapter", "no.such.adapter"], "matches no adapter"),
    (["--case", "train_f32_nc_16x5_normal_m..._e1e-05_k1_aff_trs_s0"], "not a case descriptor"),
    (["--case", "train_f32_nc_16x5_normal_m2.0_e1e-05_k1_aff_trs_s0"], "not in [0, 1]"),
    (["--results-dir", "/proc/bn-no-such-dir/x"], "not writable"),
])
def test_usage_errors_are_pytest_usage_errors(args, message, tmp_path):
    pytest.importorskip("torch")
    proc = _pytest("conformance/", "-q", "--results-root", str(tmp_path), *args)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert message in proc.stderr, proc.stderr[-1500:]
    assert "INTERNALERROR" not in proc.stdout + proc.stderr


def test_a_run_from_inside_the_package_folder_is_a_usage_error():
    """Its default results root, ./reports, would become conformance/reports and hide the
    bn_conformance.reports subpackage (the report then fails to import)."""
    proc = _pytest("test_exact.py", "-q", "--adapter", CLEAN, cwd=ROOT / "conformance")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert "inside the suite's package folder" in proc.stderr
    assert not (ROOT / "conformance" / "reports").exists()


def test_no_match_lists_the_installed_adapters(tmp_path):
    proc = _pytest("conformance/", "--adapter", "nothing", "--results-root", str(tmp_path))
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert "Installed:" in proc.stderr and "Installed: none" not in proc.stderr


def test_markers_are_registered_and_strict_markers_is_clean(tmp_path):
    proc = _pytest("conformance/", "--markers")
    for m in ("area_forward", "dtype_float16", "framework_torch", "family_jax", "xdist_group"):
        assert m in proc.stdout
    proc = _pytest("conformance/", "--strict-markers", "-q", "--adapter", CLEAN, "--case", CASES[0],
                   "--results-root", str(tmp_path), "-p", "no:xdist")
    assert proc.returncode == 0, proc.stdout[-2000:]
    proc = _pytest("conformance/", "--strict-markers", "--co", "-q", "--adapter", CLEAN, "-m", "dtype_float16",
                   "--results-root", str(tmp_path))
    assert proc.returncode == 0 and "float16" not in proc.stdout.replace("f16", "float16").split("deselected")[-1]


@pytest.mark.parametrize("profile", ["thorough", "ci"])
def test_hypothesis_profiles_are_chosen_by_pytests_own_option(profile, tmp_path):
    proc = _pytest("conformance/test_hypothesis.py", f"--hypothesis-profile={profile}", "--co", "--adapter", CLEAN,
                   "--results-root", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"hypothesis profile '{profile}'" in proc.stdout


def test_junit_xml_carries_verdict_ratio_and_findings(tmp_path):
    xml = tmp_path / "junit.xml"
    proc = _pytest("conformance/", "-q", "--adapter", BUGGY, *_cases(*CASES), "--results-root", str(tmp_path),
                   f"--junitxml={xml}")
    assert proc.returncode == 1
    text = xml.read_text()
    for prop in ('name="verdict"', 'name="worst_ratio"', 'name="framework"', 'name="version"'):
        assert prop in text


def test_wheel_installs_one_top_level_package_that_runs_from_an_empty_folder(tmp_path):
    """A non-editable install in a fresh virtual environment, run from an empty folder."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)], check=True,
                   capture_output=True, timeout=600)
    whl = next(wheels.glob("bn_conformance-*.whl"))
    with zipfile.ZipFile(whl) as z:
        tops = {n.split("/")[0] for n in z.namelist() if not n.split("/")[0].endswith(".dist-info")}
        record = z.read(next(n for n in z.namelist() if n.endswith("RECORD"))).decode()
        entry_points = z.read(next(n for n in z.namelist() if n.endswith("entry_points.txt"))).decode()
    assert tops == {"bn_conformance"}, tops
    assert all(line.split("/")[0] == "bn_conformance" or ".dist-info/" in line for line in record.splitlines() if line)
    assert "pytest11" in entry_points and "bn-conformance" in entry_points
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    constraints = ROOT / "constraints.txt"
    inst = subprocess.run([str(py), "-m", "pip", "install", "-q", "-c", str(constraints), str(whl)], capture_output=True,
                          text=True, timeout=1200)
    if inst.returncode != 0 and "Could not find a version" in inst.stderr + inst.stdout:
        pytest.skip("no package index reachable to install the wheel's dependencies")
    assert inst.returncode == 0, inst.stderr[-2000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = subprocess.run([str(venv / "bin" / "bn-conformance"), "--adapter", CLEAN, "--case", CASES[0], "-q",
                          "-p", "no:randomly"], cwd=empty, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    runs = list((empty / "reports" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "results.jsonl").exists() and (runs[0] / "report.html").exists()
    header = json.loads((runs[0] / "results.jsonl").read_text().splitlines()[0])
    assert header["type"] == "run"
    shown = subprocess.run([str(py), "-c", "import bn_conformance, sys; print(bn_conformance.__file__)"],
                           cwd=empty, capture_output=True, text=True, env=env)
    assert str(venv) in shown.stdout


def test_an_adapter_spread_over_groups_gets_every_area_in_one_of_them():
    """pytest-xdist groups (conformance/plugin.py group_of): one per adapter, or, for an adapter
    the registry spreads over k groups, every area in exactly one of k groups, each holding some
    compiled signatures, the same on every call (every worker computes it)."""
    from bn_conformance import grid, plugin, tiers
    from bn_conformance.adapters.registry import BY_NAME
    from bn_conformance.profiles import load_profile
    load_profile()
    assert plugin.group_of("torch.nn", 1, "forward", "default") == "torch.nn"
    assert BY_NAME["torch.nn.compile"].groups == 2
    for tier in tiers.TIERS:
        names = {a: plugin.group_of("torch.nn.compile", 2, a, tier) for a in [*grid.AREAS, "hypothesis", "fingerprint"]}
        assert set(names.values()) == {"torch.nn.compile/0", "torch.nn.compile/1"}, (tier, names)
        plugin._area_groups.cache_clear()
        assert names == {a: plugin.group_of("torch.nn.compile", 2, a, tier) for a in names}
