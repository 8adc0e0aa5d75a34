"""Comparison of one output against the reference: errors, ULPs, worst element, verdict.

The verdict vocabulary is ``vocab.VERDICTS`` (per check; a case's verdict is its worst check).
A new comparison kind is one function returning a ``Check``: ``compare`` (an output against
the reference with a tolerance array), ``representable`` (values of the case's dtype),
``bounded`` (a property bounded elementwise).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .vocab import FAILING, ORDER, dtype as _dtype, family as _family, round_to, worst  # noqa: F401 -- re-exported


def ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """The spacing of ``dtype`` at each value (subnormal spacing below the normal range)."""
    d = _dtype(dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.floor(np.log2(np.abs(values)))
    e = np.where(np.isfinite(e), np.maximum(e, d.emin), d.emin)
    return np.ldexp(1.0, (e - d.mantissa).astype(np.int64))


@dataclass
class Check:
    name: str                 # output compared, or property name
    family: str               # forward, eval, running, grad, batch_stats, property, parity
    verdict: str
    max_abs: float | None = None
    max_rel: float | None = None
    max_ulp: float | None = None
    ratio: float | None = None          # max over elements of |error| / tolerance
    worst_index: list | None = None
    expected: float | None = None       # reference value at the worst element
    actual: float | None = None
    tolerance: float | None = None
    detail: str = ""
    finding: str | None = None          # id of the known finding this failure is attributed to
    steps: dict | None = None           # running statistics: per-step ratio, and the reference
                                        # and implementation values of the worst channel


    def as_dict(self) -> dict:
        d = {k: _jsonable(v) for k, v in asdict(self).items()}
        if d["steps"] is not None:
            d["steps"] = {k: [_jsonable(x) for x in v] if isinstance(v, list) else v for k, v in d["steps"].items()}
        return d


def _jsonable(v):
    if isinstance(v, float) and not np.isfinite(v):
        return repr(v)   # "nan", "inf": JSON has no literal for them
    return v


def _f(v) -> float:
    return float(v)


def compare(name: str, actual, expected: np.ndarray, tol: np.ndarray, dtype: str, family: str | None = None) -> Check:
    family = family or _family(name)
    if actual is None:
        return Check(name, family, "bad-output", detail="required output not returned by the adapter")
    a = np.asarray(actual, dtype=np.float64)
    if a.shape != expected.shape:
        return Check(name, family, "bad-output", detail=f"shape {a.shape} != reference shape {expected.shape}")
    if a.size == 0:
        return Check(name, family, "pass", 0.0, 0.0, 0.0, 0.0, detail="empty")
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = round_to(expected, dtype)
    e = np.where(np.isinf(rounded) & np.isfinite(expected), rounded, expected)   # beyond the dtype: its Inf
    fin_e, fin_a = np.isfinite(e), np.isfinite(a)
    nan_e, nan_a = np.isnan(e), np.isnan(a)
    pattern_bad = (fin_e != fin_a) | (nan_e != nan_a) | (~fin_e & ~nan_e & (a != e))
    tol = np.where(np.isnan(tol), 0.0, tol)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        err = np.where(fin_e & fin_a, np.abs(a - e), 0.0)
        rel = np.where(e != 0, err / np.abs(e), np.where(err > 0, np.inf, 0.0))
        ulps = err / ulp(e, dtype)
        ratio = np.where(tol > 0, err / tol, np.where(err > 0, np.inf, 0.0))
    ratio = np.where(pattern_bad, np.inf, ratio)
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    chk = Check(name, family, "pass", max_abs=_f(err.max()), max_rel=_f(rel.max()), max_ulp=_f(ulps.max()),
                ratio=_f(ratio[worst]), worst_index=[int(i) for i in worst], expected=_f(e[worst]),
                actual=_f(a[worst]), tolerance=_f(tol[worst]))
    if name in ("running_mean", "running_var") and e.ndim == 2:
        c = int(worst[1])
        chk.steps = {"channel": c, "ratio": [_f(v) for v in ratio.max(axis=1)],
                     "expected": [_f(v) for v in e[:, c]], "actual": [_f(v) for v in a[:, c]]}
    where = [int(i) for i in worst]
    if pattern_bad.any():
        chk.verdict = "fail"
        chk.detail = (f"{int(pattern_bad.sum())} element(s) differ in finiteness from the reference, first at "
                      f"{where}: reference {float(e[worst])!r}, implementation {float(a[worst])!r}")
    elif chk.ratio > 1.0:
        chk.verdict = "fail"
        chk.detail = (f"|error| {chk.max_abs:.3g} exceeds tolerance at {where} by {chk.ratio:.3g}x: "
                      f"reference {float(e[worst])!r}, implementation {float(a[worst])!r}, "
                      f"tolerance {float(tol[worst]):.3g}")
    return chk


def representable(name: str, actual, dtype: str) -> Check:
    """Are the output's values numbers of the case's dtype? A float16 case answered in
    float32 (or with values off the float16 grid) shows here."""
    a = np.asarray(actual, dtype=np.float64)
    fin = a[np.isfinite(a)]
    target = _dtype(dtype).numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        off = fin[fin.astype(target).astype(np.float64) != fin]
    ok = off.size == 0
    return Check(f"{name}_dtype", _family(name), "pass" if ok else "fail", max_abs=float(off.size),
                 detail="" if ok else f"{off.size} of {fin.size} values of {name} are not {dtype} numbers "
                                      f"(e.g. {float(off[0])!r}): the output is not in the input dtype")


def bounded(name: str, value: np.ndarray, bound: np.ndarray, what: str) -> Check:
    """A property check: |value| <= bound elementwise (non-finite values fail)."""
    v, b = np.abs(np.asarray(value, np.float64)), np.asarray(bound, np.float64)
    if v.size == 0:
        return Check(name, "property", "pass", detail="empty")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isfinite(v), np.where(b > 0, v / b, np.where(v > 0, np.inf, 0.0)), np.inf)
    i = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    ok = bool(ratio[i] <= 1.0)
    return Check(name, "property", "pass" if ok else "fail", max_abs=_f(np.max(v, initial=0.0, where=~np.isnan(v))), ratio=_f(ratio[i]),
                 worst_index=[int(j) for j in i], actual=_f(v[i]), tolerance=_f(b[i]),
                 detail="" if ok else f"{what}: |{float(v[i]):.3g}| > bound {float(b[i]):.3g} at {[int(j) for j in i]}")
