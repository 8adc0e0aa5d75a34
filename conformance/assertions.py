"""Turning a CaseResult into a pytest outcome, with messages that say what was compared,
where, and how to reproduce it."""
from __future__ import annotations

import shlex

import pytest

from .compare import FAILING, Check
from .evaluate import CaseResult


def xfail(reason: str):
    """pytest.xfail without the traceback: the reason is the whole report (``-rx`` prints it), and
    formatting the traceback's source for every expected failure cost 39 ms each (measured,
    about 50 process-seconds over a pairwise-tier run's 1,370 expected failures)."""
    raise pytest.xfail.Exception(reason, pytrace=False)


def rerun_line(res: CaseResult, adapter_spec: str | None = None) -> str:
    """The pytest command that reruns exactly this case on this adapter and device.
    ``adapter_spec``: how the adapter is selected when that is not its name (a user spec)."""
    q = shlex.quote          # --opt=VALUE: a value that begins with "-" stays a value
    return (f"pytest conformance/ --case={q(res.case_id)} --adapter={q(adapter_spec or res.adapter)} "
            f"--device={q(res.device)}")


def _fmt(c: Check) -> str:
    nums = ""
    if c.max_abs is not None and c.family != "parity":
        nums = (f"\n      max_abs={c.max_abs:.4g} max_rel={_g(c.max_rel)} max_ulp={_g(c.max_ulp)} "
                f"ratio={_g(c.ratio)} worst={c.worst_index}")
    known = f" (finding {c.finding})" if c.finding else ""
    return f"  {c.name} [{c.family}] {c.verdict}{known}: {c.detail}{nums}"


def _g(v):
    return "n/a" if v is None else f"{v:.4g}"


def describe(res: CaseResult, checks: list[Check], adapter_spec: str | None = None) -> str:
    head = (f"{res.adapter}@{res.device} ({res.framework} {res.version}, convention {res.convention}) "
            f"on {res.case_id}")
    body = "\n".join(_fmt(c) for c in checks)
    return f"{head}\n{body}\n  rerun: {rerun_line(res, adapter_spec)}"


def require(res: CaseResult, generated: bool = False, adapter_spec: str | None = None) -> None:
    """Fail on any failing check; xfail on checks a known finding explains; skip unsupported cases.

    ``generated``: the case comes from hypothesis, where a skip or an xfail would end the
    whole property test at its first example. There an unsupported case is rejected
    (``assume``), so hypothesis draws another, and a known finding is recorded in the
    results file and let pass, so the search goes on; failures still fail.
    """
    if res.verdict == "skip":
        if generated:
            from hypothesis import assume
            assume(False)
        pytest.skip(f"{res.adapter}: {res.skip_reason}")
    failing = [c for c in res.checks if c.verdict in FAILING]
    if failing:
        pytest.fail(describe(res, failing, adapter_spec), pytrace=False)
    known = [c for c in res.checks if c.verdict == "xfail"]
    if known and not generated:
        xfail(describe(res, known, adapter_spec))
