"""Double-double arithmetic on NumPy arrays: the reference's working precision.

A value is held as an unevaluated sum ``hi + lo`` of two float64 arrays with
``|lo| <= ulp(hi)/2``, which carries about 106 bits. Each operation is built from
the error-free transformations of Knuth (TAOCP vol. 2, 4.2.2, TwoSum) and Dekker
(1971, "A floating-point technique for extending the available precision",
Split/TwoProduct); the add/mul/div/sqrt recipes follow Hida, Li & Bailey's QD
library ("Library for double-double and quad-double arithmetic", 2007).

The reference computes batch normalisation in this precision and rounds once to
float64 at the end, so each output is within one float64 ulp of the exact value on
well-conditioned inputs (``tests/test_reference_mpmath.py`` checks this against
50-digit mpmath). Non-finite values propagate as in float64: ``lo`` is forced to 0
wherever ``hi`` is not finite, so NaN and Inf behave exactly as IEEE arithmetic says.
"""
from __future__ import annotations

import numpy as np

_SPLITTER = 134217729.0  # 2**27 + 1, Dekker's constant for float64


def _clean(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = np.where(np.isfinite(hi), lo, 0.0)
    return hi, lo


def two_sum(a, b):
    """s + e == a + b exactly, s = fl(a + b) (Knuth)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def quick_two_sum(a, b):
    """s + e == a + b exactly, assuming |a| >= |b| (Dekker)."""
    s = a + b
    return s, b - (s - a)


def _split(a):
    t = _SPLITTER * a
    hi = t - (t - a)
    return hi, a - hi


def two_prod(a, b):
    """p + e == a * b exactly, p = fl(a * b) (Dekker)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def _ieee_where_not_finite(plain, hi, lo):
    """Where the float64 result is Inf or NaN, IEEE arithmetic decides: the error terms of
    Inf are NaN and must not leak into the double-double value."""
    ok = np.isfinite(plain)
    return DD(np.where(ok, hi, plain), np.where(ok, lo, 0.0))


class DD:
    """An array of double-double numbers with the arithmetic operators of a float."""

    __slots__ = ("hi", "lo")
    __array_priority__ = 1000  # so that ndarray <op> DD defers to DD

    def __init__(self, hi, lo=None):
        hi = np.asarray(hi, dtype=np.float64)
        lo = np.zeros_like(hi) if lo is None else np.asarray(lo, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            self.hi, self.lo = _clean(*np.broadcast_arrays(hi, lo))

    @staticmethod
    def of(v) -> "DD":
        return v if isinstance(v, DD) else DD(v)

    def to_float64(self) -> np.ndarray:
        with np.errstate(invalid="ignore", over="ignore"):
            return np.where(np.isfinite(self.hi), self.hi + self.lo, self.hi)

    # -- arithmetic -------------------------------------------------------------
    def __add__(self, other):
        o = DD.of(other)
        with np.errstate(invalid="ignore", over="ignore"):
            s, e = two_sum(self.hi, o.hi)
            t, f = two_sum(self.lo, o.lo)
            e = e + t
            s, e = quick_two_sum(s, e)
            e = e + f
            return _ieee_where_not_finite(self.hi + o.hi, *quick_two_sum(s, e))

    __radd__ = __add__

    def __neg__(self):
        return DD(-self.hi, -self.lo)

    def __sub__(self, other):
        return self + (-DD.of(other))

    def __rsub__(self, other):
        return DD.of(other) + (-self)

    def __mul__(self, other):
        o = DD.of(other)
        with np.errstate(invalid="ignore", over="ignore"):
            p, e = two_prod(self.hi, o.hi)
            e = e + (self.hi * o.lo + self.lo * o.hi)
            return _ieee_where_not_finite(p, *quick_two_sum(p, e))

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = DD.of(other)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            q1 = self.hi / o.hi
            r = self - o * q1
            q2 = r.hi / o.hi
            r = r - o * q2
            q3 = r.hi / o.hi
            q = DD(*quick_two_sum(q1, q2)) + q3
            # Where the quotient or the divisor is not finite (x / Inf = 0: the correction steps
            # would form Inf * 0), IEEE float64 division decides.
            ieee = ~(np.isfinite(q1) & np.isfinite(o.hi))
            return DD(np.where(ieee, q1, q.hi), np.where(ieee, 0.0, q.lo))

    def __rtruediv__(self, other):
        return DD.of(other) / self

    def sqrt(self) -> "DD":
        """One Newton step on float64 sqrt (Karp & Markstein), exact for 0 and Inf."""
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            s = np.sqrt(self.hi)
            safe = np.isfinite(s) & (s > 0)
            s_safe = np.where(safe, s, 1.0)
            corr = (self - DD(*two_prod(s_safe, s_safe))).hi / (2.0 * s_safe)
            out = DD(s_safe) + corr
            return DD(np.where(safe, out.hi, s), np.where(safe, out.lo, 0.0))

    def sum(self, axis=None) -> "DD":
        """Sum along ``axis`` with double-double accumulation (pairwise halving)."""
        hi, lo = self.hi, self.lo
        if axis is None:
            hi, lo, axis = hi.reshape(-1), lo.reshape(-1), 0
        hi = np.moveaxis(hi, axis, 0)
        lo = np.moveaxis(lo, axis, 0)
        acc = DD(hi, lo)
        if acc.hi.shape[0] == 0:
            return DD(np.zeros(acc.hi.shape[1:]))
        while acc.hi.shape[0] > 1:
            m = acc.hi.shape[0]
            half = m // 2
            head = DD(acc.hi[:half], acc.lo[:half]) + DD(acc.hi[half:2 * half], acc.lo[half:2 * half])
            if m % 2:
                head = DD(np.concatenate([head.hi, acc.hi[-1:]]), np.concatenate([head.lo, acc.lo[-1:]]))
            acc = head
        return DD(acc.hi[0], acc.lo[0])

    # -- array plumbing ---------------------------------------------------------
    @property
    def shape(self):
        return self.hi.shape

    def reshape(self, *shape) -> "DD":
        return DD(self.hi.reshape(*shape), self.lo.reshape(*shape))

    def __getitem__(self, idx) -> "DD":
        return DD(self.hi[idx], self.lo[idx])


def sqrt(v) -> DD:
    return DD.of(v).sqrt()
