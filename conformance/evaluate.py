"""case -> adapter -> outputs -> comparison against the reference -> verdicts.

``evaluate`` runs one case on one target and returns a ``CaseResult`` holding every
check; the reference for a case is computed once per convention and shared by all
targets in the process.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from adapters.protocol import Adapter, Problem
from reference import preset

from . import deviations, properties
from .case import Case
from .compare import FAILING, Check, compare, representable, worst
from .expected import Expected, expect
from .inputs import make_problem


@dataclass
class CaseResult:
    case_id: str
    adapter: str
    device: str
    framework: str
    version: str
    convention: str
    verdict: str = "pass"
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    skip_reason: str | None = None
    timings: dict = field(default_factory=dict)

    def record(self, run_id: str) -> dict:
        return {"type": "case", "run_id": run_id, "case_id": self.case_id, "adapter": self.adapter,
                "device": self.device, "framework": self.framework, "version": self.version,
                "convention": self.convention, "verdict": self.verdict,
                "checks": [c.as_dict() for c in self.checks], "error": self.error,
                "skip_reason": self.skip_reason, "timings": self.timings}

    def families(self, *families: str) -> list[Check]:
        return [c for c in self.checks if not families or c.family in families]


@lru_cache(maxsize=512)
def problem_of(case: Case) -> Problem:
    return make_problem(case)


@lru_cache(maxsize=512)
def expected_of(case: Case, convention: str) -> Expected:
    return expect(case, problem_of(case), preset(convention))


def _as_arrays(raw) -> dict[str, np.ndarray]:
    if not isinstance(raw, dict):
        raise TypeError(f"adapter returned {type(raw).__name__}, expected a dict of arrays")
    out = {}
    for k, v in raw.items():
        try:
            out[k] = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"output {k!r} is not numeric: {exc}") from None
    return out


GRADS = ("dx", "dgamma", "dbeta")


def _checks(case: Case, exp: Expected, out: dict[str, np.ndarray], pb: Problem, grads: bool = True) -> list[Check]:
    checks = []
    for name in exp.values:
        if not grads and name in GRADS:
            continue
        if name in out or name in exp.required:
            checks.append(compare(name, out.get(name), exp.values[name], exp.tol[name], exp.dtypes[name]))
    for name in ("y", "dx"):
        if name in out and out[name].shape == exp.values.get(name, np.empty(0)).shape and case.dtype != "float64":
            checks.append(representable(name, out[name], case.dtype))
    ax = case.channel_axis
    if case.mode == "train" and grads:
        checks += properties.grad_identities(out, exp, ax, pb.gamma, case.eps)
        if case.fixed and case.track and case.steps >= 20 and "y_eval" in out and case.n > 1:
            var = exp.values["batch_var"][-1]
            checks.append(properties.convergence(out, exp, pb.beta, var, case.eps, case.n, ax))
    if case.dist in ("nan", "inf") and case.channels > 1:
        checks.append(properties.isolation(out, ax))
    return checks


def _apply_deviations(res: CaseResult, generated: bool = False) -> None:
    """Failing checks named by a matching known deviation become xfails; a matching
    deviation none of whose checks fails in this case is an xpass (strict per case).
    Generated (hypothesis) cases use ``deviations.for_generated`` and are never xpass."""
    find = deviations.for_generated if generated else deviations.for_case
    devs = find(res.adapter, res.version, res.device, res.case_id)
    if not devs:
        return
    reproduced = set()
    for c in res.checks:
        if c.verdict not in FAILING:
            continue
        d = next((d for d in devs if d.names(c.name)), None)
        if d is None:
            continue
        reproduced.add(d.id)
        c.deviation = d.id
        c.verdict = "xfail"
        c.detail = f"known deviation {d.id}: {d.reason} [{d.evidence}] -- observed: {c.detail}"
    for d in devs if not generated else ():
        if d.id not in reproduced:
            res.checks.append(Check(f"deviation:{d.id}", "parity", "xpass", deviation=d.id,
                                    detail=f"known deviation {d.id} ({d.source}) matches this case but none of its "
                                           f"checks {list(d.checks)} fails: the behaviour changed; narrow or delete the entry"))


def evaluate(adapter: Adapter, device: str, case: Case, known_deviations: bool = True,
             generated: bool = False) -> CaseResult:
    """Run ``case`` on ``adapter``; ``known_deviations=False`` leaves failing checks failing
    (for measurements such as fingerprints, which judge raw behaviour)."""
    res = CaseResult(case.id, adapter.name, device, adapter.framework, adapter.version(), adapter.convention)
    t0 = time.perf_counter()
    pb = problem_of(case)
    t1 = time.perf_counter()
    reason = adapter.supports(pb, device)
    if reason:
        res.verdict, res.skip_reason = "skip", reason
        res.timings = {"inputs_s": t1 - t0}
        return res
    exp = expected_of(case, adapter.convention)
    t2 = time.perf_counter()
    raised = None
    try:
        raw = adapter.run(pb, device)
    except Exception as exc:  # noqa: BLE001 -- any failure of the backend is a verdict, not a crash
        raised = f"{type(exc).__name__}: {exc}"
        res.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        kind = type(exc).__name__
        if kind in ("WorkerCrashed", "WorkerTimeout"):   # adapters._worker: the process died or hung
            verdict = "crashed" if kind == "WorkerCrashed" else "timeout"
            res.checks.append(Check("outcome", "parity", verdict, detail=raised))
            res.verdict = verdict
            res.timings = {"inputs_s": t1 - t0, "reference_s": t2 - t1, "adapter_s": time.perf_counter() - t2}
            return res
        raw = None
    out = None
    if raw is not None:
        try:
            out = _as_arrays(raw)
        except TypeError as exc:
            res.checks.append(Check("outcome", "parity", "bad-output", detail=str(exc)))
            res.verdict = "bad-output"
            return res
    t3 = time.perf_counter()
    if exp.undefined is not None:
        verdict = "refused" if raised else "accepted"
        detail = (f"reference refuses: {exp.undefined}; implementation " +
                  (f"raised {raised}" if raised else "returned values"))
        res.checks.append(Check("outcome", "parity", verdict, detail=detail))
    elif raised:
        res.checks.append(Check("outcome", "parity", "raised",
                                detail=f"reference defines a result; implementation raised {raised}"))
    else:
        res.checks.append(Check("outcome", "parity", "pass"))
        res.checks += _checks(case, exp, out, pb, "grad" in getattr(adapter, "capabilities", ("grad",)))
    if known_deviations:
        _apply_deviations(res, generated)
    res.verdict = worst(c.verdict for c in res.checks)
    res.timings = {"inputs_s": t1 - t0, "reference_s": t2 - t1, "adapter_s": t3 - t2,
                   "compare_s": time.perf_counter() - t3}
    compile_s = getattr(adapter, "last_compile_s", None)   # optional: jitted adapters report compile time
    if compile_s is not None:
        res.timings["compile_s"] = float(compile_s)
    return res
