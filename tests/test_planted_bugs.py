"""The suite must catch planted bugs, on the checks one would expect, and must not raise
false alarms on an honest, independently written float32 implementation."""
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bn_conformance import grid
from bn_conformance.compare import FAILING
from bn_conformance.evaluate import evaluate
from tests.planted.backends import BUGS, PLANTED, NumpyBN

ROOT = Path(__file__).resolve().parents[1]
CASES = grid.all_cases()


def _failing_checks(adapter) -> Counter:
    hits = Counter()
    with np.errstate(all="ignore"):
        for case in CASES:
            for c in evaluate(adapter, "cpu", case).checks:
                if c.verdict in FAILING:
                    hits[c.name] += 1
    return hits


def test_clean_backend_passes_the_whole_grid():
    bad = []
    with np.errstate(all="ignore"):
        for case in CASES:
            r = evaluate(NumpyBN(), "cpu", case)
            if r.verdict in FAILING:
                bad.append((case.id, [(c.name, c.detail) for c in r.checks if c.verdict in FAILING], r.error))
    assert not bad, f"false alarms on an honest float32 implementation: {bad[:5]}"


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_planted_bug_is_caught_on_the_expected_checks(bug):
    what, expected = BUGS[bug]
    hits = _failing_checks(PLANTED[bug]())
    missed = expected - set(hits)
    assert not missed, f"planted bug {bug!r} ({what}) not reported on {sorted(missed)}; reported: {dict(hits)}"


@pytest.mark.parametrize("bug,case,check", [
    ("momentum_inverted", "train_f32_nchw_2x3x4x5_normal_m0.1_e1e-05_k4_aff_trs_s0", "running_mean"),
    ("one_pass_variance", "train_f32_nchw_2x3x4x5_offset1e2_m0.1_e1e-05_k1_aff_trs_s0", "running_var"),
])
def test_pytest_entry_point_reports_planted_bug(bug, case, check, tmp_path):
    """Through the real command line, loaded with --adapter FILE.py:NAME."""
    spec = f"{ROOT / 'tests' / 'planted' / 'backends.py'}:Planted_{bug}"
    proc = subprocess.run([sys.executable, "-m", "pytest", "conformance/", "-q", "-p", "no:randomly", "--adapter", spec,
                           "--case", case, "--results-dir", str(tmp_path), "--no-report"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert f"{check} [" in proc.stdout and "rerun: pytest conformance/ --case" in proc.stdout, proc.stdout[-3000:]
    assert (tmp_path / "results.jsonl").exists()
    rerun = next(line.split("rerun: ", 1)[1] for line in proc.stdout.splitlines() if "rerun: " in line)
    assert f"#numpy.{bug}" in rerun or f"Planted_{bug}" in rerun, rerun     # the rerun line names the user adapter
