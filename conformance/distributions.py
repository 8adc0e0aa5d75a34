"""Input distributions: one registry entry each, with its generator and its flags.

A distribution shapes one case's inputs in three steps, all exact or correctly rounded
IEEE operations on the raw PCG64 stream (``conformance.inputs``):

  moments(u, case, mean_c, scale_c)  per-channel mean and spread (mean_c in [-1, 1),
                                     scale_c in [0.5, 2) by default, from the uniforms u)
  draw(stream, case, C, n)           the standardised values z, shape (C, n) (default: the
                                     exact Irwin-Hall normal)
  post(x, case, mean_c)              changes after x = mean_c + scale_c z (shape (C, n))

Flags say what a distribution is for, so that the suite and the strategies never match
names:
  exact        batch mean and biased variance exactly representable: the exact tier
  nonfinite    NaN or Inf in channel 0: the isolation property applies
  offset       a mean offset of ``offset`` times the spread (conditioning)
  degenerate   a channel with zero variance (in inference, "constant" also supplies
               running statistics equal to the values, with zero variance)
  magnitude    values near the dtype's limit, or squares beyond it
  generated    hypothesis may draw it
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# Spread for "huge": the largest power of two S with |x| <= 7 S representable in the input
# dtype and n * (7 S)^2 representable in the statistics dtype for n <= 2^14.
HUGE_SCALE = {"float16": 2.0 ** 12, "bfloat16": 2.0 ** 56, "float32": 2.0 ** 56, "float64": 2.0 ** 480}
# Largest magnitude of "constant": n * M stays below the dtype's maximum / 4 for n <= 2^14
# (a sum of the channel's values does not overflow), except float16, whose range is small:
# there M = 2^10 keeps n * M below 65504 for n <= 60; float64 stops at 2^960, below which the
# reference's double-double products (Dekker's split multiplies by 2^27 + 1) cannot overflow.
CONSTANT_MAX = {"float16": 2.0 ** 10, "bfloat16": 2.0 ** 110, "float32": 2.0 ** 110, "float64": 2.0 ** 960}
# Spread for "overflow": squared deviations overflow the accumulation dtype (float32 for
# 16- and 32-bit inputs: S^2 = 2^140 > 3.4e38; float16 accumulation: S^2 = 2^20 > 65504)
# while every value, and the normalised output, is finite.
OVERFLOW_SCALE = {"float16": 2.0 ** 10, "bfloat16": 2.0 ** 70, "float32": 2.0 ** 70}


def _same(u, case, mean_c, scale_c):
    return mean_c, scale_c


def _normal(stream, case, C, n):
    return stream.normal((C, n))


def _keep(x, case, mean_c):
    return x


@dataclass(frozen=True)
class Distribution:
    name: str
    description: str
    flags: frozenset = frozenset()
    offset: float = 1.0                    # mean offset as a multiple of the spread (conditioning)
    moments: Callable = _same
    draw: Callable = _normal
    post: Callable = _keep
    dtypes: tuple = ("float16", "bfloat16", "float32", "float64")   # where it is meaningful

    def has(self, flag: str) -> bool:
        return flag in self.flags


def _offset(r: float):
    def moments(u, case, mean_c, scale_c):
        return r * scale_c * np.where(mean_c < 0, -1.0, 1.0), scale_c
    return moments


def _tiny(u, case, mean_c, scale_c):
    return mean_c, scale_c * np.sqrt(case.eps * 1e-4)


def _exact_moments(u, case, mean_c, scale_c):
    C = case.channels
    k = np.floor(17.0 * u[:C]) - 8.0                  # integers in [-8, 8]
    return k / 4.0, 2.0 ** (np.floor(4.0 * u[C:]) - 2.0)   # means k/4; spreads 1/4, 1/2, 1, 2


def _exact_draw(stream, case, C, n):
    half = n // 2
    signs = np.concatenate([np.ones(half), -np.ones(half), np.zeros(n - 2 * half)])
    return np.stack([signs[np.argsort(stream.uniform(n), kind="stable")] for _ in range(C)])


def _heavy_draw(stream, case, C, n):
    z = stream.normal((C, n)) / (0.25 + np.abs(stream.normal((C, n))))
    return np.where(stream.uniform(C * n).reshape(C, n) < 0.01, 50.0 * z, z)


def _huge(u, case, mean_c, scale_c):
    S = HUGE_SCALE[case.dtype]
    return S * np.where(mean_c < 0, -1.0, 1.0), S * np.ones(case.channels)


def _constant_moments(u, case, mean_c, scale_c):
    """Every channel constant; channel c at magnitude 2^(c/(C-1) * log2 M) times 1 + k/8
    (k in 0..7, so that sums of the values are not exact), alternating sign: from 1 to near
    the dtype's limit (CONSTANT_MAX)."""
    C = case.channels
    top = np.log2(CONSTANT_MAX[case.dtype])
    expo = np.round(np.arange(C) * (top / max(C - 1, 1)))
    mant = 1.0 + np.floor(8.0 * u[:C]) / 8.0
    sign = np.where(np.arange(C) % 2 == 0, 1.0, -1.0)
    return sign * mant * 2.0 ** expo, np.zeros(C)


def _overflow(u, case, mean_c, scale_c):
    S = OVERFLOW_SCALE[case.dtype]
    return S * mean_c, S * scale_c


def _channel0_constant(x, case, mean_c):
    if x.shape[1]:
        x[0] = mean_c[0]
    return x


def _shard_shift(x, case, mean_c):
    """Each replica's samples shifted by 3 x its index (the spread is in [0.5, 2)), exactly.
    Applied on the (C, n) layout, where the batch axis is the slowest of the non-channel
    axes, so replica r's samples are one contiguous block of columns."""
    if not case.replicas or not x.shape[1]:
        return x
    per = x.shape[1] // case.shape[0]                 # values per sample and channel
    start = 0
    for r, size in enumerate(case.replicas):
        x[:, start * per:(start + size) * per] += 3.0 * r
        start += size
    return x


def _nonfinite(value):
    def post(x, case, mean_c):
        if x.shape[1]:
            x[0, x.shape[1] // 2] = value
        return x
    return post


_ALL = [
    Distribution("normal", "standard normal per channel, with channel means in [-1, 1] and scales in [0.5, 2]",
                 frozenset({"generated"})),
    Distribution("offset1e2", "mean offset 100x the spread", frozenset({"offset", "generated"}), 1e2, _offset(1e2)),
    Distribution("offset1e4", "mean offset 1e4x the spread", frozenset({"offset", "generated"}), 1e4, _offset(1e4),
                 dtypes=("float32", "float64")),
    Distribution("offset1e6", "mean offset 1e6x the spread (meaningful in float64)", frozenset({"offset"}), 1e6,
                 _offset(1e6), dtypes=("float64",)),
    Distribution("offset1e8", "mean offset 1e8x the spread (meaningful in float64)", frozenset({"offset"}), 1e8,
                 _offset(1e8), dtypes=("float64",)),
    Distribution("tiny", "variance 1e-4 * eps: far below eps", frozenset({"generated"}), 1.0, _tiny),
    Distribution("const", "channel 0 constant (zero variance), the others normal",
                 frozenset({"degenerate", "generated"}), post=_channel0_constant),
    Distribution("heavy", "heavy tails (ratio of normals) with 1% outliers at 50x", frozenset({"generated"}),
                 draw=_heavy_draw),
    Distribution("exact", "values mean_c +- d_c with balanced signs: batch mean and biased variance exactly "
                          "representable", frozenset({"exact"}), moments=_exact_moments, draw=_exact_draw),
    Distribution("nan", "normal, one NaN in channel 0", frozenset({"nonfinite", "generated"}), post=_nonfinite(np.nan)),
    Distribution("inf", "normal, one +Inf in channel 0", frozenset({"nonfinite"}), post=_nonfinite(np.inf)),
    Distribution("huge", "magnitudes near the dtype's limit, with n * variance still representable in the "
                         "statistics dtype", frozenset({"magnitude", "generated"}), moments=_huge),
    Distribution("constant", "every channel constant (zero variance), magnitudes from 1 to near the dtype's "
                             "limit: the exact output is beta at every magnitude", frozenset({"degenerate"}),
                 moments=_constant_moments),
    Distribution("overflow", "spread 2^70 (float16: 2^10): squared deviations overflow float32 (float16) "
                             "accumulation while every value and the normalised output are finite",
                 frozenset({"magnitude"}), moments=_overflow, dtypes=("float16", "bfloat16", "float32")),
    Distribution("shardshift", "normal, each replica's samples shifted by 3 x its index: the pooled variance is "
                               "not the mean of the replicas' variances", frozenset({"replicas"}),
                 post=_shard_shift),
]
DISTRIBUTIONS: dict[str, Distribution] = {d.name: d for d in _ALL}


def get(name: str) -> Distribution:
    try:
        return DISTRIBUTIONS[name]
    except KeyError:
        raise KeyError(f"unknown distribution {name!r}; known: {sorted(DISTRIBUTIONS)}") from None


def with_flag(flag: str) -> tuple[str, ...]:
    return tuple(n for n, d in DISTRIBUTIONS.items() if flag in d.flags)
