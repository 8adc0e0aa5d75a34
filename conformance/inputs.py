"""Deterministic inputs for a case, bit for bit from its descriptor.

Randomness comes only from the raw 64-bit output of NumPy's PCG64 bit generator, whose
stream NumPy keeps stable across versions (NEP 19), seeded from a SHA-256 of the case
descriptor. Every value is then built with exact or correctly rounded IEEE operations
(+, -, *, /): no transcendental functions, whose last bits vary between platforms.
"Normal" draws are Irwin-Hall sums of 12 uniforms on a 2^-20 grid minus 6 (mean 0,
variance 1, support [-6, 6]), exact in float64. Values are finally rounded to the
case's dtype, and the reference sees exactly those rounded values.
"""
from __future__ import annotations

import hashlib

import ml_dtypes
import numpy as np

from adapters.protocol import Problem

from .case import Case

DISTRIBUTIONS = {
    "normal": "standard normal per channel, with channel means in [-1, 1] and scales in [0.5, 2]",
    "offset1e2": "mean offset 100x the spread",
    "offset1e4": "mean offset 1e4x the spread",
    "offset1e6": "mean offset 1e6x the spread (meaningful in float64)",
    "offset1e8": "mean offset 1e8x the spread (meaningful in float64)",
    "tiny": "variance 1e-4 * eps: far below eps",
    "const": "channel 0 constant (zero variance), the others normal",
    "heavy": "heavy tails (ratio of normals) with 1% outliers at 50x",
    "exact": "values mean_c +- d_c with balanced signs: batch mean and biased variance exactly representable",
    "nan": "normal, one NaN in channel 0",
    "inf": "normal, one +Inf in channel 0",
    "huge": "magnitudes near the dtype's limit, with n * variance still representable in the statistics dtype",
}

# Spread for "huge": the largest power of two S with |x| <= 7 S representable in the input
# dtype and n * (7 S)^2 representable in the statistics dtype for n <= 2^14.
_HUGE_SCALE = {"float16": 2.0 ** 12, "bfloat16": 2.0 ** 56, "float32": 2.0 ** 56, "float64": 2.0 ** 480}


def seed_of(case: Case) -> int:
    return int.from_bytes(hashlib.sha256(case.id.encode()).digest()[:8], "little")


class _Stream:
    """Uniforms on a 2^-20 grid from PCG64's raw stream (three per 64-bit word)."""

    def __init__(self, seed: int):
        self._bg = np.random.PCG64(seed)

    def uniform(self, size: int) -> np.ndarray:
        words = self._bg.random_raw((size + 2) // 3).astype(np.uint64)
        parts = np.stack([(words >> np.uint64(s)) & np.uint64(0xFFFFF) for s in (0, 20, 40)], axis=1)
        return parts.reshape(-1)[:size].astype(np.float64) * 2.0 ** -20

    def normal(self, shape) -> np.ndarray:
        size = int(np.prod(shape, dtype=np.int64))
        u = self.uniform(12 * size).reshape(size, 12)
        return (u.sum(axis=1) - 6.0).reshape(shape)  # exact: 12 terms of 20 bits

    def signs(self, size: int) -> np.ndarray:
        return np.where(self.uniform(size) < 0.5, -1.0, 1.0)


def round_to(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round float64 values to ``dtype`` (round-to-nearest-even) and return them in the
    carrier array type (bfloat16 values travel in float32 arrays)."""
    if dtype == "bfloat16":
        return values.astype(ml_dtypes.bfloat16).astype(np.float32)
    return values.astype(dtype)


def _channels_last(arr_c_first: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(arr_c_first, 0, axis)


def _batch(s: _Stream, case: Case, mean_c, scale_c) -> np.ndarray:
    """One batch of the case's shape (float64, before rounding)."""
    ax, C = case.channel_axis, case.channels
    shape_cf = (C,) + tuple(d for i, d in enumerate(case.shape) if i != ax)
    n = case.n
    if case.dist == "exact":
        half = n // 2
        signs = np.concatenate([np.ones(half), -np.ones(half), np.zeros(n - 2 * half)])
        z = np.stack([signs[np.argsort(s.uniform(n), kind="stable")] for _ in range(C)])
    elif case.dist == "heavy":
        z = s.normal((C, n)) / (0.25 + np.abs(s.normal((C, n))))
        z = np.where(s.uniform(C * n).reshape(C, n) < 0.01, 50.0 * z, z)
    else:
        z = s.normal((C, n))
    x = mean_c[:, None] + scale_c[:, None] * z
    if case.dist == "const" and n:
        x[0] = mean_c[0]
    if case.dist in ("nan", "inf") and n:
        x[0, n // 2] = np.nan if case.dist == "nan" else np.inf
    return _channels_last(x.reshape(shape_cf), ax)


def _channel_moments(s: _Stream, case: Case):
    C = case.channels
    u = s.uniform(2 * C)
    mean_c = 2.0 * u[:C] - 1.0                     # [-1, 1)
    scale_c = 0.5 + 1.5 * u[C:]                    # [0.5, 2)
    d = case.dist
    if d.startswith("offset"):
        mean_c = float(d[len("offset"):]) * scale_c * np.where(mean_c < 0, -1.0, 1.0)
    elif d == "tiny":
        scale_c = scale_c * np.sqrt(case.eps * 1e-4)
    elif d == "exact":
        k = np.floor(17.0 * u[:C]) - 8.0           # integers in [-8, 8]
        mean_c = k / 4.0
        scale_c = 2.0 ** (np.floor(4.0 * u[C:]) - 2.0)   # 1/4, 1/2, 1, 2
    elif d == "huge":
        S = _HUGE_SCALE[case.dtype]
        mean_c = S * np.where(mean_c < 0, -1.0, 1.0)
        scale_c = S * np.ones(C)
    return mean_c, scale_c


def make_problem(case: Case) -> Problem:
    """The full input set of a case as the adapter boundary's ``Problem``."""
    s = _Stream(seed_of(case))
    C, dt = case.channels, case.dtype
    pdt = "float32" if dt in ("float16", "bfloat16") else dt
    mean_c, scale_c = _channel_moments(s, case)
    if case.fixed:
        xs = [_batch(s, case, mean_c, scale_c)] * case.steps
    else:
        xs = [_batch(s, case, mean_c, scale_c) for _ in range(case.steps)]
    x = round_to(np.stack(xs), dt)
    dy = round_to(s.normal(x.shape), dt)
    g = s.uniform(3 * C)
    if case.affine:
        gamma = round_to(np.where(g[:C] < 0.2, -1.0, 1.0) * (0.5 + g[C:2 * C]), pdt)
        beta = round_to(2.0 * g[2 * C:] - 1.0, pdt)
    else:
        gamma, beta = np.ones(C, dtype=pdt), np.zeros(C, dtype=pdt)
    rm = rv = None
    if case.mode in ("infer", "frozen"):
        r = s.uniform(2 * C)
        rm = round_to(mean_c + 0.5 * scale_c * (2.0 * r[:C] - 1.0), pdt)
        rv = round_to(scale_c * scale_c * (0.5 + r[C:]), pdt)
    return Problem(case_id=case.id, mode=case.mode, dtype=dt, layout=case.layout, shape=tuple(case.shape),
                   channel_axis=1 if case.channel_axis == 1 else -1, momentum=case.momentum, eps=case.eps,
                   affine=case.affine, track_running_stats=case.track, steps=case.steps, x=x, dy=dy,
                   gamma=gamma, beta=beta, running_mean=rm, running_var=rv)
