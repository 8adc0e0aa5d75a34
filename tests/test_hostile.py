"""Hostile and broken backends, through the real command line: every fault ends in a verdict
(or a load error that fails the run), no finished case record is lost, and nothing an
adapter returns, raises or declares is executed, in the main process, in a report's
reproducer, or in the rerun commands the suite prints.

The backends are in tests/planted/hostile.py; one suite run (``hostile_run``) carries most
of them, so the whole module costs one pytest start-up plus the faults' own time.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bn_conformance.results import load

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ROOT / "tests" / "planted" / "hostile.py"
CASE = "train_f32_nhwc_2x4x5x3_normal_m0.1_e1e-05_k2_aff_trs_s0"
TIMEOUT = 4          # --case-timeout of the runs here: a hang costs this much


# -- running the suite -------------------------------------------------------------------------------

@dataclass
class Run:
    pid: int
    returncode: int
    output: str
    wall_s: float


def interruptible() -> None:
    """preexec_fn: SIGINT at its default in the child, as in a terminal, so Python turns it into
    KeyboardInterrupt even when these tests run in a shell that ignores SIGINT for background
    jobs (a child inherits an ignored SIGINT, and Python then keeps ignoring it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args, results: Path, hostile_dir: Path, *, env: dict | None = None, cwd: Path = ROOT,
          report: bool = False, paths=("conformance/",), **popen) -> subprocess.Popen:
    """Start ``python -m pytest conformance/ ... --results-dir RESULTS`` as a user runs it;
    the hostile module's side effects go to ``hostile_dir``."""
    env = dict(os.environ, BN_HOSTILE_DIR=str(hostile_dir), **(env or {}))
    cmd = [sys.executable, "-m", "pytest", *paths, "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
           "--results-dir", str(results), *([] if report else ["--no-report"]), *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, preexec_fn=interruptible, **popen)
    proc.started = time.monotonic()
    return proc


def finish(proc: subprocess.Popen, timeout: float = 300) -> Run:
    out, _ = proc.communicate(timeout=timeout)
    return Run(proc.pid, proc.returncode, out, time.monotonic() - proc.started)


def suite(args, results: Path, hostile_dir: Path, *, timeout: float = 300, **kw) -> Run:
    return finish(start(args, results, hostile_dir, **kw), timeout)


def adapter_args(*names: str) -> list[str]:
    return [a for n in names for a in ("--adapter", f"{HOSTILE}:{n}")]


def alive(pid: int) -> bool:
    """Is ``pid`` a live process (zombies count as dead)?"""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def pwned(*folders: Path) -> list[str]:
    return sorted(str(p) for f in folders if f.exists() for p in f.rglob("PWNED*"))


def no_crash_of_the_suite(output: str) -> None:
    assert "INTERNALERROR" not in output and "Traceback (most recent call last)" not in output, output[-4000:]


# -- the faults ---------------------------------------------------------------------------------------

# constructor and declared metadata: the adapter does not load; the run fails with the reason
LOAD_FAULTS = {
    "InitRaises": "constructor exploded",
    "InitExits": "died",
    "InitHangs": "timed out",
    "VersionRaises": "no version",
    "VersionNotText": "version must be",
    "VersionCode": "version must be",
    "FrameworkCode": "framework must be",
    "DevicesString": "devices() must return a list",
    "DevicesUnknown": "unknown device name(s) ['quantum']",
    "DevicesRaises": "no devices",
    "UnknownConvention": "'no-such-preset' is not a preset",
    "ShadowsBuiltin": "has the name of a built-in adapter",
    "NameNotText": "name must be",
    "NameCode": "name must be",
    "CapabilitiesBad": "capabilities must be",
    "CapsPropertyRaises": "capabilities property exploded",
    "NameStrSubclass": "does not accept",
}

# adapter name -> the verdict of CASE
VERDICTS = {
    # outputs (factory hostile.py:outputs)
    "hostile.out_complex": "bad-output", "hostile.out_string": "bad-output", "hostile.out_bytes": "bad-output",
    "hostile.out_object": "bad-output", "hostile.out_int": "bad-output", "hostile.out_bool": "bad-output",
    "hostile.out_scalar": "bad-output", "hostile.out_scalar_stats": "bad-output", "hostile.out_none": "bad-output",
    "hostile.out_str_value": "bad-output", "hostile.out_datetime": "bad-output", "hostile.out_layout": "bad-output",
    "hostile.out_key": "bad-output", "hostile.out_list": "bad-output", "hostile.out_unpicklable": "bad-output",
    "hostile.out_pickle": "bad-output", "hostile.out_subclass": "bad-output",
    "hostile.huge_message": "raised", "hostile.bad_str": "raised",
    "hostile.supports_raises": "raised", "hostile.supports_odd": "bad-output", "hostile.supports_markup": "skip",
    "hostile.supports_dies": "crashed", "hostile.inference_only": "pass", "hostile.clean": "pass",
    # text (factory hostile.py:text)
    "torch.hostile_raises": "raised",
    "torch.hostile_sh'; touch PWNED_sh; echo '$(touch PWNED_subst)`touch PWNED_tick`": "fail",
    # one spec each
    "hostile.out_huge": "bad-output", "hostile.prints": "pass", "hostile.fork_pipe": "crashed",
    "hostile.spawns": "pass", "hostile.spawns_hangs": "timeout", "hostile.device_name_raises": "pass",
    "hostile.sh'; touch PWNED_sh; echo '$(touch PWNED_subst)`touch PWNED_tick`": "pass",
    "hostile.<script>document.title='PWNED'</script><b>bold</b>{{ 7+7 }}": "pass",
}
SINGLES = ("Huge", "Prints", "ForkHoldsPipe", "SpawnsChildren", "SpawnsAndHangs", "DeviceNameRaises", "NameShell",
           "NameMarkup")
# what a bad-output verdict must say
DETAILS = {
    "hostile.out_complex": "complex", "hostile.out_string": "string", "hostile.out_bytes": "bytes",
    "hostile.out_object": "object", "hostile.out_int": "integer", "hostile.out_bool": "boolean",
    "hostile.out_scalar": "shape ()", "hostile.out_scalar_stats": "'running_mean' has shape ()",
    "hostile.out_none": "required output not returned", "hostile.out_str_value": "is a str",
    "hostile.out_datetime": "datetime",
    "hostile.out_layout": "'dx' has shape (2, 2, 3, 4, 5), the case needs (2, 2, 4, 5, 3)",
    "hostile.out_key": "unknown output", "hostile.out_list": "expected a dict",
    "hostile.out_unpicklable": "could not be sent", "hostile.out_pickle": "posix.system",
    "hostile.out_subclass": "not plain data", "hostile.supports_odd": "supports() returned int",
    "hostile.out_huge": "answered more than",
}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """The hostile runs, made once per pytest session: under pytest-xdist the first worker
    that needs them runs them (the others wait on a lock and read its result)."""
    import fcntl
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent                 # this session's folder, common to its workers
    with open(shared / "hostile.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "hostile.json"
        if not done.exists():
            done.write_text(json.dumps(_hostile_runs(shared / "hostile")))
        saved = json.loads(done.read_text())
    base = Path(saved["base"])
    run, load_run = Run(**saved["run"]), Run(**saved["load_run"])
    records = load(base / "results")
    cases = {r["adapter"]: r for r in records if r["type"] == "case"}
    header = next(r for r in records if r["type"] == "run")
    return {"run": run, "records": records, "cases": cases, "header": header, "marks": base / "marks",
            "results": base / "results", "tmpdir": base / "tmp", "base": base, "load_run": load_run,
            "pids": {run.pid, load_run.pid}}


def _hostile_runs(base: Path) -> dict:
    marks, tmpdir = base / "marks", base / "tmp"
    marks.mkdir(parents=True)
    tmpdir.mkdir()
    common = ["--case", CASE, "--case-timeout", str(TIMEOUT)]
    env = {"TMPDIR": str(tmpdir), "BN_HOSTILE_HUGE_MB": "160"}
    # two runs side by side (each fault costs mostly a worker's start-up or a time limit)
    load_run = start([*adapter_args(*LOAD_FAULTS), *common], base / "load", marks, env=env)
    run = finish(start([*adapter_args("outputs", "text", *SINGLES), *common], base / "results", marks, env=env))
    load_run = finish(load_run)
    return {"base": str(base), "run": vars(run), "load_run": vars(load_run)}


def test_every_fault_is_a_verdict_and_no_record_is_lost(hostile_run):
    run, cases = hostile_run["run"], hostile_run["cases"]
    no_crash_of_the_suite(run.output)
    assert run.returncode == 1, run.output[-3000:]
    assert set(cases) == set(VERDICTS), (set(cases) ^ set(VERDICTS))
    got = {a: r["verdict"] for a, r in cases.items()}
    assert got == VERDICTS, {a: (got[a], v) for a, v in VERDICTS.items() if got.get(a) != v}
    for name, text in DETAILS.items():
        rec = cases[name]
        said = " ".join(str(c.get("detail")) for c in rec["checks"]) + str(rec.get("error"))
        assert text in said, (name, said[:500])
    end = hostile_run["records"][-1]
    assert end["type"] == "end" and end["status"] == "partial"


def test_load_faults_fail_the_run_with_their_reason(hostile_run):
    """A user adapter that cannot be loaded is a failing test with its reason; the run exits 1
    (no case ran, so no results file was written)."""
    run = hostile_run["load_run"]
    no_crash_of_the_suite(run.output)
    assert run.returncode == 1, run.output[-3000:]
    for cls, text in LOAD_FAULTS.items():
        label = f"{HOSTILE}:{cls}"
        assert f"test_adapter_loads[{label}" in run.output, cls
        said = run.output.split(f"\n{label}: ", 1)[1][:600]         # the failing test's message
        assert text in said, (cls, said)
    assert run.output.count("FAILED conformance/test_loading.py::test_adapter_loads") == len(LOAD_FAULTS)
    # a constructor that hangs costs the time limit, not the run
    assert run.wall_s < 240


def test_adapter_code_runs_only_in_workers(hostile_run):
    """Import-time code of a user adapter ran in worker processes, never in the suite's own
    process, and no payload (pickled os.system, code in versions, names, messages) ran."""
    marks, run = hostile_run["marks"], hostile_run["run"]
    pids = {int(p.name.split(".")[1]) for p in marks.glob("imported.*")}
    assert pids, "the hostile module was never imported"
    assert not pids & hostile_run["pids"]
    assert pwned(marks, ROOT, hostile_run["base"]) == []


def test_outputs_and_messages_are_bounded(hostile_run):
    cases = hostile_run["cases"]
    printed = cases["hostile.prints"]["output"]              # 80 MB printed during the call
    assert "LAST LINE OF OUTPUT" in printed and len(printed) < 10000 and "bytes cut" in printed
    huge = cases["hostile.huge_message"]                     # a 3 MB exception message
    assert len(huge["error"]) < 25000 and all(len(c.get("detail") or "") < 2100 for c in huge["checks"])
    # a 160 MB answer for a case whose outputs are a few KB: refused by the byte limit, unread
    assert "refused unread" in cases["hostile.out_huge"]["error"]


def test_worker_processes_are_cleaned_up(hostile_run):
    cases, marks, tmpdir = hostile_run["cases"], hostile_run["marks"], hostile_run["tmpdir"]
    # a worker that exits while its forked grandchild holds the pipe: crashed at once, not a timeout
    fork = cases["hostile.fork_pipe"]
    assert fork["verdict"] == "crashed" and fork["timings"]["adapter_s"] < TIMEOUT - 1, fork["timings"]
    # every process an adapter started is gone: after a crash (fork), a timeout (spawns_hangs), at exit (spawns)
    children = {p.read_text(): int(p.name.split(".")[1]) for p in marks.glob("child.*")}
    assert {"fork", "spawn", "spawn-hang"} <= set(children), children
    assert [pid for pid in children.values() if alive(pid)] == []
    # the workers' output capture files are removed
    assert list(tmpdir.glob("bn-worker-*")) == []


def _options(words: list[str]) -> list[tuple[str, str]]:
    """[(option, value)] of ``--opt VALUE`` / ``--opt=VALUE`` words (anything else: an error)."""
    out, i = [], 0
    while i < len(words):
        assert words[i].startswith("--"), words
        if "=" in words[i]:
            out.append(tuple(words[i].split("=", 1)))
            i += 1
        else:
            out.append((words[i], words[i + 1]))
            i += 2
    return out


def _expected_argv(line: str) -> dict:
    """The words a rerun line must split into: the suite's own command and options, one value
    each (backend text stays inside one value). Returns {option: value} (the case id as --case)."""
    argv = shlex.split(line)
    if argv[0] == "pytest":
        assert argv[1] == "conformance/", line
        opts = _options(argv[2:])
        assert [k for k, _ in opts] == ["--case", "--adapter", "--device"], line
    else:
        assert argv[:3] == ["python", "-m", "bn_conformance.repro"], line
        opts = [("--case", argv[3])] + _options(argv[4:])
        assert [k for k, _ in opts] == ["--case", "--adapter", "--device", "--save"], line
    return dict(opts)


def test_backend_text_is_data_in_the_report(hostile_run):
    """The report of the hostile run: markup from names, messages and skip reasons is escaped,
    and every reproduction command it shows splits (under shell rules) into exactly the suite's
    options, the backend's text staying inside one quoted value."""
    import html as htmllib
    out = hostile_run["results"] / "report.html"
    proc = subprocess.run([sys.executable, "-m", "bn_conformance.reports", "build", str(hostile_run["results"])],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = out.read_text(encoding="utf-8")
    assert "<script>document.title='PWNED'" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;document.title=" in html
    shown = [htmllib.unescape(block) for block in re.findall(r'<pre class="cmd">(.*?)</pre>', html, re.S)]
    assert shown, "no reproduction commands in the report"
    lines = [line for block in shown for line in block.splitlines()]
    for line in lines:
        _expected_argv(line)
    assert any("PWNED_sh" in line for line in lines)           # the shell-syntax adapter's commands are there
    assert pwned(hostile_run["marks"], hostile_run["results"]) == []


def test_rerun_commands_quote_backend_text(hostile_run, tmp_path):
    """Every repro command of every record splits (shell syntax) into the suite's own
    arguments; the ones of the adapter whose name, framework and version are shell code are
    run: they rerun that adapter, and nothing else runs."""
    cmds = [(rec, line) for rec in hostile_run["cases"].values() if "repro" in rec
            for line in rec["repro"]["code"].splitlines()]
    assert cmds
    for rec, line in cmds:
        opts = _expected_argv(line)
        assert opts["--case"] == rec["case_id"] and opts["--device"] == rec["device"], line
        assert opts["--adapter"].endswith("#" + rec["adapter"]), (opts, rec["adapter"])
    shell = [line for rec, line in cmds if rec["adapter"].startswith("torch.hostile_sh")]
    assert len(shell) == 2
    (tmp_path / "conformance").symlink_to(ROOT / "conformance")
    env = dict(os.environ, BN_HOSTILE_DIR=str(hostile_run["marks"]), PYTHONPATH=str(ROOT))
    for line in shell:
        line = line.replace("<repo>", str(ROOT))        # records name this checkout's paths by placeholders
        proc = subprocess.run(["bash", "-c", line + " -p no:cacheprovider" * line.startswith("pytest")],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]     # the case fails again
    assert pwned(tmp_path, hostile_run["marks"]) == []
    rerun = [load(p) for p in (tmp_path / "reports" / "runs").glob("*")]
    assert [r["verdict"] for recs in rerun for r in recs if r["type"] == "case"] == ["fail"]
    assert list(tmp_path.glob("*.npz"))                  # the stand-alone line saved the inputs


def test_rerun_lines_work_for_every_adapter_kind(tmp_path):
    """The ``rerun:`` line a failure prints selects the same adapter again, for a file adapter
    in a folder whose name holds '#' and a space, a module adapter and an entry-point adapter;
    the suite's line for a built-in does too. Each is run as printed, from another folder."""
    folder = tmp_path / "odd #dir name"
    folder.mkdir()
    (folder / "adapter.py").write_text("from tests.planted.hostile import Fails\n\n\n"
                                       "class FileFails(Fails):\n    name = 'hostile.fails_file'\n")
    eps = tmp_path / "ep"
    (eps / "bn_hostile_ep-0.1.dist-info").mkdir(parents=True)
    (eps / "bn_hostile_ep-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: bn-hostile-ep\n"
                                                                  "Version: 0.1\n")
    (eps / "bn_hostile_ep-0.1.dist-info" / "entry_points.txt").write_text(
        "[bn_conformance.adapters]\nhostile_ep = tests.planted.hostile:FailsEntry\n")
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(eps)])}
    marks = tmp_path / "marks"
    marks.mkdir()
    case = "train_f32_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0"
    first = suite(["--adapter", f"{folder / 'adapter.py'}:FileFails", "--adapter", "tests.planted.hostile:Fails",
                   "--adapter", "hostile.entry_point", "--case", case], tmp_path / "first", marks, env=env)
    no_crash_of_the_suite(first.output)
    assert first.returncode == 1, first.output[-3000:]
    lines = sorted({line.strip()[len("rerun: "):] for line in first.output.splitlines()
                    if line.strip().startswith("rerun: ")})
    assert len(lines) == 3, first.output[-3000:]
    from bn_conformance.adapters.loading import split_spec
    from bn_conformance.repro import commands
    builtin = commands(case, "onnxruntime.opset15", "cpu").splitlines()[0]
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "conformance").symlink_to(ROOT / "conformance")
    for line in lines + [builtin]:
        if "onnxruntime" in line and not importlib.util.find_spec("onnxruntime"):
            continue
        before = set((work / "reports" / "runs").glob("*")) if (work / "reports").exists() else set()
        proc = subprocess.run(["bash", "-c", line + " -q -p no:cacheprovider"], cwd=work, capture_output=True,
                              text=True, timeout=300, env=dict(os.environ, BN_HOSTILE_DIR=str(marks), **env))
        no_crash_of_the_suite(proc.stdout + proc.stderr)
        (run,) = set((work / "reports" / "runs").glob("*")) - before
        (rec,) = [r for r in load(run) if r["type"] == "case"]
        spec = _expected_argv(line)["--adapter"]
        assert rec["case_id"] == case and (spec == rec["adapter"] or split_spec(spec)[2] == rec["adapter"]), line
        want = "pass" if "onnxruntime" in line else "fail"
        assert rec["verdict"] == want and proc.returncode == (0 if want == "pass" else 1), proc.stdout[-3000:]


# -- bad case ids ------------------------------------------------------------------------------------

BAD_IDS = {
    "k200000": "train_f32_nc_16x5_normal_m0.1_e1e-05_k200000_aff_trs_s0",
    "huge": "train_f32_nc_100000x100000_normal_m0.1_e1e-05_k1_aff_trs_s0",
    "momentum2": "train_f32_nc_16x5_normal_m2_e1e-05_k1_aff_trs_s0",
    "momentum-1": "train_f32_nc_16x5_normal_m-1_e1e-05_k1_aff_trs_s0",
    "eps<0": "train_f32_nc_16x5_normal_m0.1_e-1e-05_k1_aff_trs_s0",
    "m..": "train_f32_nc_16x5_normal_m.._e1e-05_k1_aff_trs_s0",
    "eps inf": "train_f32_nc_16x5_normal_m0.1_e1e999_k1_aff_trs_s0",
    "momentum inf": "train_f32_nc_16x5_normal_m1e999_e1e-05_k1_aff_trs_s0",
}


@pytest.mark.parametrize("what,why", [("k200000", "steps 200000 not in [1, "), ("m..", "not a case descriptor")])
def test_bad_case_ids_are_refused_by_the_suite(what, why, tmp_path):
    """Refused before any work with a message naming the problem, never a test run, never an
    INTERNALERROR. (The plugin raises pytest.UsageError while collecting, which pytest reports
    as collection errors, exit status 2; raised at configure time it would be exit 4.)"""
    run = suite(["--case", BAD_IDS[what], "--adapter", f"{HOSTILE}:Clean"], tmp_path / "r", tmp_path, timeout=120)
    no_crash_of_the_suite(run.output)
    assert run.returncode in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR), run.output[-3000:]
    assert f"--case: {BAD_IDS[what]!r}" in run.output or "--case: not a case" in run.output, run.output[-3000:]
    assert why in run.output, run.output[-3000:]
    assert run.wall_s < 60 and not (tmp_path / "r").exists()


@pytest.mark.parametrize("what", ["huge", "eps inf"])
def test_bad_case_ids_are_usage_errors_of_the_repro_command(what, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bn_conformance.repro", BAD_IDS[what]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    no_crash_of_the_suite(proc.stdout + proc.stderr)
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr[-2000:]


def test_descriptor_parsing_never_crashes():
    """Every field of a descriptor, mangled: BadDescriptor, never another exception; no
    accepted case asks for unbounded work or values outside the model."""
    from bn_conformance.case import LIMITS, BadDescriptor, parse
    good = "train_f32_nchw_2x3x4x5_normal_m0.1_e1e-05_k3_aff_trs_fixed_stgiven_r1+1_s0"
    parse(good)
    fields = good.split("_")
    junk = ["", "-1", "1e999", "inf", "nan", "..", "0x", "9" * 500, "x", "m", "e", "k", "s", "st", "r", "r1+",
            "r+1", "m1e999", "e1e999", "m-0.1", "e-0", "k0", "s-1", "s" + "9" * 40, "2x" * 50 + "2", "0", "1.5",
            "mcum", "e0", "m1", "m0", "k1000", "k1001", "\n", "é", "\x00"]
    tried = 0
    for i in range(len(fields)):
        for j in junk:
            text = "_".join(fields[:i] + [j] + fields[i + 1:])
            tried += 1
            try:
                case = parse(text)
            except BadDescriptor:
                continue
            assert case.eps >= 0 and case.eps < float("inf")
            assert case.momentum is None or 0 <= case.momentum <= 1
            assert 1 <= case.steps <= LIMITS["steps"]
            assert parse(case.id) == case
    for text in BAD_IDS.values():
        with pytest.raises(BadDescriptor):
            parse(text)
    for text in (None, 5, b"train", "x" * 10 ** 6):
        with pytest.raises(BadDescriptor):
            parse(text)
    assert tried > 400


def test_every_case_the_suite_makes_round_trips_through_its_rerun_line():
    """Grid cases, hypothesis cases and extreme floats: the id parses back to the case, and the
    rerun line's shell words carry the id unchanged."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from bn_conformance import grid
    from bn_conformance.case import Case, parse
    from bn_conformance.repro import commands
    from bn_conformance.strategies import cases

    def check(case):
        assert parse(case.id) == case
        argv = shlex.split(commands(case.id, "a", "cpu").splitlines()[0])
        assert f"--case={case.id}" in argv or argv[argv.index("--case") + 1] == case.id

    for case in grid.all_cases():
        check(case)

    @settings(max_examples=150, deadline=None, database=None)
    @given(cases(modes=("train", "infer", "frozen", "fresh")),
           st.floats(0, 1) | st.none(), st.floats(0, 1e300, allow_infinity=False, allow_nan=False))
    def prop(case, momentum, eps):
        check(case)
        check(Case(case.mode, case.dtype, case.layout, case.shape, momentum=momentum, eps=eps))

    prop()


# -- --isolate: declared capabilities reach the suite ---------------------------------------------------

def test_isolated_builtin_keeps_its_capabilities(tmp_path):
    """--isolate onnxruntime.opset15 (forward and running statistics, no gradients): its
    training cases are judged without gradients, not bad-output."""
    pytest.importorskip("onnxruntime")
    case = "train_f32_nchw_2x3x4x5_normal_m0.1_e1e-05_k3_aff_trs_s0"
    run = suite(["--isolate", "--adapter", "onnxruntime.opset15", "--case", case], tmp_path / "r", tmp_path,
                timeout=300)
    no_crash_of_the_suite(run.output)
    records = load(tmp_path / "r")
    (rec,) = [r for r in records if r["type"] == "case"]
    assert rec["verdict"] in ("pass", "xfail"), rec
    assert not [c for c in rec["checks"] if c["name"] in ("dx", "dgamma", "dbeta")]
    assert "grad" not in records[0]["adapters"]["onnxruntime.opset15"]["capabilities"]


# -- in-process adapters: inputs are read-only ----------------------------------------------------------

def test_an_adapter_cannot_change_the_inputs_of_the_next():
    """Built-in adapters run in the suite's process and share the case's arrays: writing into
    them raises (a verdict for that adapter), and the next adapter sees the case unchanged."""
    import numpy as np

    from bn_conformance.case import parse
    from bn_conformance.evaluate import evaluate, problem_of
    from tests.planted.hostile import Clean, MutatesInputs
    case = parse("train_f32_nchw_2x3x4x5_normal_m0.1_e1e-05_k3_aff_trs_s0")
    before = problem_of(case).x.copy()
    bad = evaluate(MutatesInputs(), "cpu", case)
    assert bad.verdict == "raised" and "read-only" in bad.error
    assert np.array_equal(problem_of(case).x, before)
    assert evaluate(Clean(), "cpu", case).verdict == "pass"


def test_guard_survives_exceptions_that_cannot_be_printed():
    from bn_conformance.evaluate import guarded
    from tests.planted.hostile import BadStr

    def boom():
        raise BadStr()
    value, fault = guarded(boom)
    assert value is None and fault.verdict == "raised" and "BadStr" in fault.message


# -- the answer channel -------------------------------------------------------------------------------

def test_worker_answers_cannot_run_code_or_import_modules(tmp_path):
    """The main process reads worker answers with an unpickler that builds plain data and
    NumPy arrays only."""
    import pickle

    import numpy as np

    from bn_conformance.adapters._worker import loads_answer
    import ml_dtypes
    ok = {"y": np.ones((2, 3), np.float32), "b": np.zeros(2, ml_dtypes.bfloat16), "s": np.float64(1.0),
          "c": 1 + 2j, "t": (1, "x", None), "o": np.array([1.0], object)}
    got = loads_answer(pickle.dumps(ok, protocol=pickle.HIGHEST_PROTOCOL))
    assert got["y"].dtype == np.float32 and got["b"].dtype == ml_dtypes.bfloat16 and got["c"] == 1 + 2j

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED_unpickle'}",))
    for bad in (Payload(), {"y": Payload()}, np.array([Payload()], object)):
        with pytest.raises(pickle.UnpicklingError):
            loads_answer(pickle.dumps(bad))
    with pytest.raises(pickle.UnpicklingError):
        loads_answer(pickle.dumps(subprocess.Popen))      # a class reference alone imports its module
    assert pwned(tmp_path) == []


def test_oversize_answer_is_refused_without_growing_the_main_process(tmp_path):
    """A 400 MB answer to a call limited to 64 MB: refused unread; the process that asked
    stays small (measured in a fresh process, by its peak resident size)."""
    script = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from bn_conformance.adapters._worker import Proxy, WorkerOversize
from bn_conformance.case import parse
from bn_conformance.evaluate import problem_of
p = Proxy("huge", "bn_conformance.adapters.loading:instantiate", {{"spec": {str(HOSTILE) + ":Huge"!r}}}, timeout_s=120)
pb = problem_of(parse("train_f32_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0"))
try:
    p.run(pb, "cpu", max_bytes=64 << 20)
    print("ACCEPTED")
except WorkerOversize as exc:
    print("REFUSED", exc)
p.close()
print("HWM", [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
"""
    env = dict(os.environ, BN_HOSTILE_HUGE_MB="400", BN_HOSTILE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert "REFUSED" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    hwm_kb = int(re.search(r"HWM (\d+)", proc.stdout).group(1))
    assert hwm_kb < 300 * 1024, f"main process peaked at {hwm_kb / 1024:.0f} MB"


# -- the fingerprint ----------------------------------------------------------------------------------

def test_fingerprint_fails_for_an_adapter_whose_probes_crash(tmp_path):
    """Every probe segfaults: the fingerprint test fails (it used to pass: nothing measured
    contradicted the declared preset), and its record says what crashed."""
    run = suite(["--adapter", f"{HOSTILE}:Segfaults"], tmp_path / "r", tmp_path, timeout=300,
                paths=("conformance/test_fingerprint.py",))
    no_crash_of_the_suite(run.output)
    assert run.returncode == 1 and "fingerprint probes crashed" in run.output, run.output[-3000:]
    (fp,) = [r for r in load(tmp_path / "r") if r["type"] == "fingerprint"]
    assert "crashed" in json.dumps(fp["fields"])


def test_fingerprint_command_fails_for_an_adapter_whose_probes_crash(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bn_conformance.fingerprint", f"{HOSTILE}:Segfaults"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, BN_HOSTILE_DIR=str(tmp_path)))
    no_crash_of_the_suite(proc.stdout + proc.stderr)
    assert proc.returncode == 1, proc.stdout[-3000:]
