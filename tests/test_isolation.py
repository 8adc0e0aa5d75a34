"""Misbehaving backends get verdicts; the rest of the run completes; an interrupted run
keeps what finished."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bn_conformance.results import load

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "planted" / "misbehaving.py"
TRAIN = "train_f32_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0"
INFER = "infer_f32_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0"


def _suite(tmp_path, *args, timeout=300):
    cmd = [sys.executable, "-m", "pytest", "conformance/test_forward.py", "-q", "-p", "no:randomly",
           "--results-dir", str(tmp_path), "--no-report", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _verdicts(tmp_path):
    return {(r["adapter"], r["case_id"]): r for r in load(tmp_path) if r["type"] == "case"}


def test_each_misbehaviour_gets_its_verdict_and_the_run_completes(tmp_path):
    names = ["Segfaults", "Hangs", "Garbage", "ReturnsNaN", "Raises", "ExitsQuietly"]
    args = [a for n in names for a in ("--adapter", f"{BAD}:{n}")]
    proc = _suite(tmp_path, *args, "--case-timeout", "5", "--case", TRAIN, "--case", INFER)
    assert proc.returncode == 1, proc.stdout[-2000:]
    v = _verdicts(tmp_path)
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


def test_leaking_backend_is_restarted_and_keeps_passing(tmp_path):
    env = dict(os.environ, BN_WORKER_MAX_RSS_MB="200")
    cmd = [sys.executable, "-m", "pytest", "conformance/test_forward.py", "-q", "-p", "no:randomly", "--no-report",
           "--results-dir", str(tmp_path), "--adapter", f"{BAD}:Leaks", "-k", "nc_ or nchw_2x3x4x5"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:]
    v = _verdicts(tmp_path)
    assert len(v) >= 5 and all(r["verdict"] in ("pass", "skip") for r in v.values())


def test_interrupted_run_keeps_finished_cases(tmp_path):
    """SIGINT mid-run: finished cases are in the results, and a report builds from them."""
    # the inference area runs its "infer" cases (which this backend answers) before its
    # "train" ones (where it hangs)
    cmd = [sys.executable, "-m", "pytest", "conformance/test_inference.py", "-q", "-p", "no:randomly", "--no-report",
           "--results-dir", str(tmp_path), "--adapter", f"{BAD}:Hangs", "--case-timeout", "600"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        parts = list(tmp_path.glob("results*.jsonl"))
        if parts and sum(1 for line in parts[0].read_text().splitlines() if '"type": "case"' in line) >= 3:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)       # it is now blocked in a hanging train case
    proc.communicate(timeout=60)
    records = load(tmp_path)
    cases = [r for r in records if r["type"] == "case"]
    assert len(cases) >= 3 and all(r["verdict"] in ("pass", "skip") for r in cases)
    out = tmp_path / "report.html"
    subprocess.run([sys.executable, "-m", "reports", "merge", str(tmp_path), "-o", str(out)], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    assert out.exists() and out.stat().st_size > 1000
    json.dumps(records)
