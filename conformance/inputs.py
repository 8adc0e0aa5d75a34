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

import numpy as np

from bn_conformance.adapters.protocol import Problem

from .case import Case
from .distributions import DISTRIBUTIONS, get  # noqa: F401 -- re-exported for callers
from .vocab import param_dtype, round_to

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


def _batch(s: _Stream, case: Case, dist, mean_c, scale_c) -> np.ndarray:
    """One batch of the case's shape (float64, before rounding)."""
    ax, C, n = case.channel_axis, case.channels, case.n
    shape_cf = (C,) + tuple(d for i, d in enumerate(case.shape) if i != ax)
    x = mean_c[:, None] + scale_c[:, None] * dist.draw(s, case, C, n)
    x = dist.post(x, case, mean_c)
    return np.moveaxis(x.reshape(shape_cf), 0, ax)


def _channel_moments(s: _Stream, case: Case, dist):
    C = case.channels
    u = s.uniform(2 * C)
    return dist.moments(u, case, 2.0 * u[:C] - 1.0, 0.5 + 1.5 * u[C:])   # means in [-1, 1), scales in [0.5, 2)


def _invalidate(rm: np.ndarray, rv: np.ndarray, kind: str | None):
    """Supplied statistics of kind ``kind`` (vocab.SUPPLIED): channel 0 made invalid."""
    rm, rv = rm.copy(), rv.copy()
    if rm.size:
        if kind == "negvar":
            rv[0] = -1.0
        elif kind == "zerovar":
            rv[0] = 0.0
        elif kind == "nanvar":
            rv[0] = np.nan
        elif kind == "infvar":
            rv[0] = np.inf
        elif kind == "nanmean":
            rm[0] = np.nan
    return rm, rv


def make_problem(case: Case) -> Problem:
    """The full input set of a case as the adapter boundary's ``Problem``. Its arrays are
    read-only: an adapter that writes into its inputs raises instead of changing what the
    next adapter or the reference sees."""
    s = _Stream(seed_of(case))
    C, dt = case.channels, case.dtype
    pdt = param_dtype(dt)
    dist = get(case.dist)
    mean_c, scale_c = _channel_moments(s, case, dist)
    if case.fixed:
        xs = [_batch(s, case, dist, mean_c, scale_c)] * case.steps
    else:
        xs = [_batch(s, case, dist, mean_c, scale_c) for _ in range(case.steps)]
    x = np.ascontiguousarray(round_to(np.stack(xs), dt))   # C order in every process (pickling keeps it)
    dy = round_to(s.normal(x.shape), dt)
    g = s.uniform(3 * C)
    if case.affine:
        gamma = round_to(np.where(g[:C] < 0.2, -1.0, 1.0) * (0.5 + g[C:2 * C]), pdt)
        beta = round_to(2.0 * g[2 * C:] - 1.0, pdt)
    else:
        gamma, beta = np.ones(C, dtype=pdt), np.zeros(C, dtype=pdt)
    rm = rv = None
    if case.mode in ("infer", "frozen") or case.stats is not None:
        r = s.uniform(2 * C)
        rm = round_to(mean_c + 0.5 * scale_c * (2.0 * r[:C] - 1.0), pdt)
        rv = round_to(scale_c * scale_c * (0.5 + r[C:]), pdt)
        if case.dist == "constant":      # inputs equal to the running mean, with zero running variance
            rm, rv = round_to(round_to(mean_c, dt), pdt), np.zeros(C, pdt)
        rm, rv = _invalidate(rm, rv, case.stats)
    pb = Problem(case_id=case.id, mode=case.mode, dtype=dt, layout=case.layout, shape=tuple(case.shape),
                 channel_axis=1 if case.channel_axis == 1 else -1, momentum=case.momentum, eps=case.eps,
                 affine=case.affine, track_running_stats=case.track, steps=case.steps, x=x, dy=dy,
                 gamma=gamma, beta=beta, running_mean=rm, running_var=rv, replicas=case.replicas,
                 init_train=case.init_train)
    for a in (pb.x, pb.dy, pb.gamma, pb.beta, pb.running_mean, pb.running_var):
        if a is not None:
            a.setflags(write=False)
    return pb
