"""case -> adapter -> outputs -> comparison against the reference -> verdicts.

``evaluate`` runs one case on one target and returns a ``CaseResult`` holding every check.
Every call into an adapter goes through ``guarded``, which turns whatever the adapter does
(raises, dies, hangs, answers garbage) into a verdict on that case; every output goes
through ``outputs.validate`` before it is compared. The reference for a case is computed
once per convention and shared by all targets in the process.
"""
from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from bn_conformance.adapters.protocol import Adapter, Problem
from bn_conformance.reference import preset

from . import findings as known, properties
from .case import Case
from .compare import FAILING, Check, compare, representable, worst
from .distributions import get as distribution
from .expected import Expected, expect
from .inputs import make_problem
from .outputs import BadOutput, max_bytes, validate
from .vocab import GRADS


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
    output: str | None = None          # what an isolated adapter printed during the call (bounded)
    findings: list = field(default_factory=list)   # [{"id", "triggered"}] of the findings covering this case

    def record(self, run_id: str) -> dict:
        rec = {"type": "case", "run_id": run_id, "case_id": self.case_id, "adapter": self.adapter,
               "device": self.device, "framework": self.framework, "version": self.version,
               "convention": self.convention, "verdict": self.verdict,
               "checks": [c.as_dict() for c in self.checks], "error": self.error,
               "skip_reason": self.skip_reason, "timings": self.timings, "findings": self.findings}
        if self.output:
            rec["output"] = self.output
        return rec

    def families(self, *families: str) -> list[Check]:
        return [c for c in self.checks if not families or c.family in families]


@lru_cache(maxsize=4096)
def problem_of(case: Case) -> Problem:
    return make_problem(case)


# every (case, convention) of a worker's run: the default tier's cases take about 13 MB per
# convention (measured), and each is computed once per worker instead of once per adapter
@lru_cache(maxsize=4096)
def expected_of(case: Case, convention: str) -> Expected:
    return expect(case, problem_of(case), preset(convention))


# -- the guard --------------------------------------------------------------------------------------

_WORKER_VERDICTS = {"WorkerCrashed": "crashed", "WorkerTimeout": "timeout", "WorkerOversize": "bad-output",
                    "WorkerBadAnswer": "bad-output", "WorkerError": "crashed", "BadOutput": "bad-output"}
MESSAGE_MAX = 2000        # a fault's one-line message (check details)
ERROR_MAX = 20000         # the recorded error text (a record must stay within the results schema)


@dataclass
class Fault:
    """What went wrong in a call into an adapter."""
    verdict: str          # raised | crashed | timeout | bad-output
    message: str          # "Kind: message", one line (line breaks and control characters escaped), bounded
    error: str            # the text recorded in the case record (bounded)


def one_line(text: str, limit: int = MESSAGE_MAX) -> str:
    """``text`` with every line break and other non-printable character escaped, at most
    ``limit`` characters: backend text that cannot start a new line wherever it is shown."""
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text[:limit * 2])
    return text if len(text) <= limit else text[:limit] + " [...]"


def _bounded(text: str, limit: int = ERROR_MAX) -> str:
    return text if len(text) <= limit else text[:limit] + f" [... {len(text) - limit} characters cut]"


def _str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 -- an exception whose __str__ raises
        return f"<{type(exc).__name__} whose str() raised>"


def guarded(fn, *args, **kwargs):
    """(value, None) or (None, Fault): any exception from an adapter call becomes a Fault."""
    try:
        return fn(*args, **kwargs), None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 -- any failure of the backend is a verdict, not a crash
        kind = type(exc).__name__
        if kind == "RemoteError":                       # raised inside a worker: report the adapter's exception
            text = f"{exc.kind}: {exc.message}"
            return None, Fault("raised", one_line(text), _bounded(text))
        text = f"{kind}: {_str(exc)}"
        verdict = _WORKER_VERDICTS.get(kind, "raised")
        error = text
        if verdict == "raised":
            try:
                error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            except Exception:  # noqa: BLE001
                pass
        return None, Fault(verdict, one_line(text), _bounded(error))


def adapter_version(adapter) -> str:
    """The adapter's version, or a note saying why there is none (never raises)."""
    cached = getattr(adapter, "_bn_version", None)
    if cached is not None:
        return cached
    v, fault = guarded(adapter.version)
    text = str(v)[:200] if fault is None and isinstance(v, str) and v else \
        f"unknown ({fault.message[:150] if fault else f'version() returned {type(v).__name__}'})"
    try:
        adapter._bn_version = text
    except (AttributeError, TypeError):
        pass
    return text


def _call_run(adapter, pb: Problem, device: str, limit: int):
    run = adapter.run
    if getattr(adapter, "_isolated", False) or type(adapter).__name__ == "Proxy":
        return guarded(run, pb, device, max_bytes=limit)
    return guarded(run, pb, device)


# -- checks -----------------------------------------------------------------------------------------

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
    if distribution(case.dist).has("nonfinite") and case.channels > 1:
        checks.append(properties.isolation(out, ax))
    return checks


def attribute(res: CaseResult, case: Case) -> None:
    """Attribute failing checks to the known findings whose ``when`` covers this case (and
    whose envelope they fit): they become xfails naming the finding. Every matching finding
    is listed in ``res.findings`` with whether it triggered here; failing checks no finding
    names still fail. Strictness is judged per finding over the whole run (``findings.stale``)."""
    res.findings = []
    for f in known.for_case(case, res.adapter, res.version, res.device):
        triggered = False
        for c in res.checks:
            if c.verdict in FAILING and c.finding is None and f.names(c.name) and f.envelope.fits(c):
                c.finding, c.verdict = f.id, "xfail"
                triggered = True
        res.findings.append({"id": f.id, "triggered": triggered})


def _fault(res: CaseResult, fault, what: str, t0: float) -> CaseResult:
    res.checks.append(Check("outcome", "parity", fault.verdict, detail=f"{what}: {fault.message}"))
    res.verdict, res.error = fault.verdict, fault.error
    res.timings["adapter_s"] = time.perf_counter() - t0
    return res


def capability_skip(adapter: Adapter, pb: Problem) -> str | None:
    """The reason a case needs a capability the adapter does not declare (adapters/protocol.py),
    decided from its metadata alone; None when it may run."""
    if pb.replicas and "replicas" not in (getattr(adapter, "capabilities", None) or ()):
        return ("replica cases need the 'replicas' capability (statistics combined across replicas, "
                "adapters/protocol.py); this adapter does not declare it")
    return None


def evaluate(adapter: Adapter, device: str, case: Case, attribute_findings: bool = True) -> CaseResult:
    """Run ``case`` on ``adapter``; ``attribute_findings=False`` leaves failing checks failing
    (for measurements such as fingerprints, which judge raw behaviour)."""
    res = CaseResult(case.id, adapter.name, device, str(getattr(adapter, "framework", "?")), adapter_version(adapter),
                     str(getattr(adapter, "convention", "?")))
    t0 = time.perf_counter()
    pb = problem_of(case)
    t1 = time.perf_counter()
    res.timings = {"inputs_s": t1 - t0}
    caps = getattr(adapter, "capabilities", None) or ("grad",)
    if capability_skip(adapter, pb):
        res.verdict, res.skip_reason = "skip", capability_skip(adapter, pb)
        return res
    reason, fault = guarded(adapter.supports, dataclasses.replace(pb), device)
    if fault is None and reason is not None and not (isinstance(reason, str) and reason.strip()):
        fault = guarded(_bad, f"supports() returned {type(reason).__name__} {str(reason)[:80]!r}, "
                              "expected None or a reason")[1]
    if fault is not None:
        return _fault(res, fault, "supports()", t1)
    if reason:
        res.verdict, res.skip_reason = "skip", reason[:2000]
        return res
    exp = expected_of(case, adapter.convention)
    t2 = time.perf_counter()
    limit = max_bytes(case.shape, case.steps)
    stats = getattr(adapter, "compile_stats", None)
    c0 = stats() if callable(stats) and not hasattr(adapter, "meta") else None
    raw, fault = _call_run(adapter, dataclasses.replace(pb), device, limit)
    res.output = getattr(adapter, "last_output", None) or None
    t3 = time.perf_counter()
    res.timings |= {"reference_s": t2 - t1, "adapter_s": t3 - t2}
    if c0 is not None:
        c1 = stats()
        res.timings |= {"compiles": c1[0] - c0[0], "compile_s": c1[1] - c0[1]}
    if fault is not None and fault.verdict != "raised":
        return _fault(res, fault, "run()", t2)
    raised = fault.message if fault is not None else None
    res.error = fault.error if fault is not None else None
    out = None
    if raw is not None and raised is None:
        try:
            steps = case.steps if case.mode in ("train", "frozen") else 1
            out = validate(raw, case.shape, steps, case.channels, limit)
        except BadOutput as exc:
            res.checks.append(Check("outcome", "parity", "bad-output", detail=str(exc)))
            res.verdict = "bad-output"
            return res
    elif raised is None:
        res.checks.append(Check("outcome", "parity", "bad-output", detail="run() returned None"))
        res.verdict = "bad-output"
        return res
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
        res.checks += _checks(case, exp, out, pb, "grad" in caps)
    if attribute_findings:
        attribute(res, case)
    res.verdict = worst(c.verdict for c in res.checks)
    res.timings["compare_s"] = time.perf_counter() - t3
    return res


def _bad(message: str):
    raise BadOutput(message)
