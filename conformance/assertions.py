"""Turning a CaseResult into a pytest outcome, with messages that say what was compared,
where, and how to reproduce it."""
from __future__ import annotations

import shlex

import pytest

from .compare import FAILING, Check
from .evaluate import CaseResult


def rerun_line(res: CaseResult) -> str:
    return (f"pytest conformance/ --case {shlex.quote(res.case_id)} --adapter {shlex.quote(res.adapter)} "
            f"--device {res.device}")


def _fmt(c: Check) -> str:
    nums = ""
    if c.max_abs is not None and c.family != "parity":
        nums = (f"\n      max_abs={c.max_abs:.4g} max_rel={_g(c.max_rel)} max_ulp={_g(c.max_ulp)} "
                f"ratio={_g(c.ratio)} worst={c.worst_index}")
    return f"  {c.name} [{c.family}] {c.verdict}: {c.detail}{nums}"


def _g(v):
    return "n/a" if v is None else f"{v:.4g}"


def describe(res: CaseResult, checks: list[Check]) -> str:
    head = (f"{res.adapter}@{res.device} ({res.framework} {res.version}, convention {res.convention}) "
            f"on {res.case_id}")
    body = "\n".join(_fmt(c) for c in checks)
    return f"{head}\n{body}\n  rerun: {rerun_line(res)}"


def require(res: CaseResult, generated: bool = False) -> None:
    """Fail on any failing check; xfail on known deviations; skip unsupported cases.

    ``generated``: the case comes from hypothesis, where a skip or an xfail would end the
    whole property test at its first example. There an unsupported case is rejected
    (``assume``), so hypothesis draws another, and a known deviation is recorded in the
    results file and let pass, so the search goes on; failures still fail.
    """
    if res.verdict == "skip":
        if generated:
            from hypothesis import assume
            assume(False)
        pytest.skip(f"{res.adapter}: {res.skip_reason}")
    failing = [c for c in res.checks if c.verdict in FAILING]
    if failing:
        pytest.fail(describe(res, failing), pytrace=False)
    known = [c for c in res.checks if c.verdict == "xfail"]
    if known and not generated:
        pytest.xfail(describe(res, known))
