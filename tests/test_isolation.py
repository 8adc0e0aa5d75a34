"""Misbehaving backends get verdicts; the rest of the run completes; an interrupted or
killed run keeps what finished and says that it did not finish; the worker processes and
everything they start are gone afterwards.

Every run here is the real command line (``python -m pytest conformance/ ...`` in a
subprocess, results in its own --results-dir)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bn_conformance.results import load
from tests.test_hostile import HOSTILE, ROOT, adapter_args, alive, finish, no_crash_of_the_suite, start, suite

BAD = ROOT / "tests" / "planted" / "misbehaving.py"
TRAIN = "train_f32_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0"
INFER = "infer_f32_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0"


def _verdicts(folder):
    return {(r["adapter"], r["case_id"]): r for r in load(folder) if r["type"] == "case"}


def _case_lines(folder: Path) -> int:
    return sum(line.count('"type": "case"') for p in folder.glob("results*.jsonl") for line in
               p.read_text(encoding="utf-8", errors="replace").splitlines())


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _report(folder: Path) -> str:
    out = folder / "merged.html"
    proc = subprocess.run([sys.executable, "-m", "bn_conformance.reports", "merge", str(folder), "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out.read_text(encoding="utf-8")


def test_each_misbehaviour_gets_its_verdict_and_the_run_completes(tmp_path):
    names = ["Segfaults", "Hangs", "Garbage", "ReturnsNaN", "Raises", "ExitsQuietly"]
    args = [a for n in names for a in ("--adapter", f"{BAD}:{n}")]
    run = suite([*args, "--case-timeout", "4", "--case", TRAIN, "--case", INFER], tmp_path / "r", tmp_path)
    no_crash_of_the_suite(run.output)
    assert run.returncode == 1, run.output[-2000:]
    v = _verdicts(tmp_path / "r")
    assert v[("bad.segfault", TRAIN)]["verdict"] == "crashed"
    assert v[("bad.exit", TRAIN)]["verdict"] == "crashed"
    assert v[("bad.hang", TRAIN)]["verdict"] == "timeout"
    assert v[("bad.garbage", TRAIN)]["verdict"] == "bad-output"
    assert v[("bad.garbage", INFER)]["verdict"] == "bad-output"          # wrong shape
    assert v[("bad.nan", TRAIN)]["verdict"] == "fail"
    assert v[("bad.raises", TRAIN)]["verdict"] == "raised"
    # after a crash or a hang the worker restarts and the next case runs normally
    assert v[("bad.segfault", INFER)]["verdict"] == "pass"
    assert v[("bad.hang", INFER)]["verdict"] == "pass"
    assert len(v) == 12
    assert load(tmp_path / "r")[-1]["status"] == "partial"


def test_leaking_backend_is_restarted_and_keeps_passing(tmp_path):
    cases = ["train_f32_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0", "train_f64_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0",
             "train_f32_nchw_2x3x4x5_normal_m0.1_e1e-05_k3_aff_trs_s0", INFER]
    run = suite(["--adapter", f"{BAD}:Leaks", *[a for c in cases for a in ("--case", c)]], tmp_path / "r", tmp_path,
                env={"BN_WORKER_MAX_RSS_MB": "150"})
    assert run.returncode == 0, run.output[-2000:]
    v = _verdicts(tmp_path / "r")
    assert len(v) == 4 and all(r["verdict"] == "pass" for r in v.values())


def test_interrupted_run_keeps_finished_cases(tmp_path):
    """SIGINT mid-run: finished cases are in the results, the end record says "interrupted",
    and a report builds from them."""
    # the inference area runs its "infer" cases (which this backend answers) before its
    # "train" ones (where it hangs)
    results = tmp_path / "r"
    proc = start(["--adapter", f"{BAD}:Hangs", "--case-timeout", "600"], results, tmp_path,
                 paths=("conformance/test_inference.py",))
    _wait_for(lambda: _case_lines(results) >= 3, 120, "three finished cases")
    proc.send_signal(signal.SIGINT)
    run = finish(proc, timeout=60)
    assert run.returncode == 2, run.output[-2000:]
    records = load(results)
    cases = [r for r in records if r["type"] == "case"]
    assert len(cases) >= 3 and all(r["verdict"] in ("pass", "skip") for r in cases)
    assert records[-1]["type"] == "end" and records[-1]["status"] == "interrupted"
    assert "interrupted" in _report(results)


def test_ctrl_c_with_a_worker_that_ignores_signals_ends_promptly(tmp_path):
    """Ctrl-C (SIGINT to the suite's process group, as a terminal sends it) while a worker that
    ignores SIGTERM and SIGINT hangs: the run ends within seconds, keeps the finished case,
    marks the results interrupted, and the worker is gone."""
    results, marks = tmp_path / "r", tmp_path / "marks"
    marks.mkdir()
    proc = start([*adapter_args("IgnoresSignals"), "--case", TRAIN, "--case", INFER, "--case-timeout", "600"],
                 results, marks, start_new_session=True)
    _wait_for(lambda: list(marks.glob("hanging.*")) and _case_lines(results) >= 1, 120, "the second call to hang")
    worker = int(next(marks.glob("hanging.*")).name.split(".")[1])
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    run = finish(proc, timeout=60)
    assert time.monotonic() - t0 < 20
    assert run.returncode == 2, run.output[-2000:]
    records = load(results)
    assert [r["verdict"] for r in records if r["type"] == "case"] == ["pass"]
    assert records[-1]["status"] == "interrupted"
    _wait_for(lambda: not alive(worker), 10, "the worker to be gone")


def test_adapter_that_kills_the_suite_loses_no_finished_record(tmp_path):
    """An adapter kills the suite's own process (SIGKILL): the run's exit status is not 0, the
    finished case is in the results folder (part file), and its report says the run did not
    finish."""
    results, marks = tmp_path / "r", tmp_path / "marks"
    marks.mkdir()
    run = suite([*adapter_args("KillsParent"), "--case", TRAIN, "--case", INFER], results, marks)
    assert run.returncode == -signal.SIGKILL, run.output[-2000:]
    records = load(results)                                  # read from the part file
    assert [r["verdict"] for r in records if r["type"] == "case"] == ["pass"]
    assert not [r for r in records if r["type"] == "end"]
    assert "interrupted" in _report(results)


def test_orphans_do_not_hold_the_output_pipe(tmp_path):
    """``pytest ... | cat`` ends when the suite ends, even though an adapter left a process in
    a session of its own running (it holds no descriptor of the suite's output)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    cmd = (f"set -o pipefail; {sys.executable} -m pytest conformance/ -q -p no:randomly -p no:cacheprovider "
           f"--no-report --results-dir {tmp_path / 'r'} --adapter {HOSTILE}:DetachedChild --case {TRAIN} | cat")
    t0 = time.monotonic()
    try:
        proc = subprocess.run(["bash", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=100,
                              env=dict(os.environ, BN_HOSTILE_DIR=str(marks)), stdin=subprocess.DEVNULL)
        assert time.monotonic() - t0 < 90
        assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-2000:]
    finally:
        for p in marks.glob("detached.*"):                   # the process the adapter left behind
            try:
                os.kill(int(p.name.split(".")[1]), signal.SIGKILL)
            except OSError:
                pass
    assert list(marks.glob("detached.*"))
