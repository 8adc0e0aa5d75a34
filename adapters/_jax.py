"""Shared JAX plumbing for the Flax, Haiku and Equinox adapters: dtype helpers, the
compile cache (``Jit``) and the scenario driver (``play``). Imports no JAX library
beyond jax itself.

Precision: x64 is enabled at import (``jax.config.update("jax_enable_x64", True)``) so
float64 cases run in float64; float32 cases keep float32 because every array the
adapters create has an explicit dtype.

Compilation: one executable per distinct argument structure, shapes and dtypes. The
case's values (eps, momentum, gamma, beta, running statistics, inputs) are traced
arguments, never static or closed-over constants, so cases that differ only in those
values share an executable. eps and momentum are passed as Python floats: jax.jit traces
them as weakly typed scalars (https://docs.jax.dev/en/latest/type_promotion.html, "weak
types"), which promote exactly as the Python-float constants a user writes in a
constructor do (a float32 statistic times a weak float stays float32).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

from .protocol import Problem  # noqa: E402

COMPILE_LOG: list[tuple[str, float]] = []   # (key, seconds) of every XLA compilation the Jit cache did


def jdtype(name: str):
    return jnp.bfloat16 if name == "bfloat16" else jnp.dtype(name)


def to_j(a, dtype: str):
    return jnp.asarray(np.asarray(a), dtype=jdtype(dtype))


def to_np(a) -> np.ndarray:
    return np.asarray(jnp.asarray(a, jnp.float64) if a.dtype != jnp.float64 else a).copy()


def _sig(a):
    if isinstance(a, (float, int)) and not isinstance(a, bool):
        return ((), type(a).__name__ + "-weak")
    return (np.shape(a), jnp.result_type(a))


class Jit:
    """jax.jit with an explicit executable cache keyed by the arguments' tree structure,
    shapes and dtypes, compiled ahead of time so the compile cost is measured
    (https://docs.jax.dev/en/latest/aot.html: jit(f).lower(*args).compile())."""

    def __init__(self, fn: Callable, label: str):
        self.jitted, self.label, self.exe = jax.jit(fn), label, {}

    def __call__(self, *args):
        leaves, tree = jax.tree_util.tree_flatten(args)
        key = (tree, tuple(_sig(a) for a in leaves))
        exe = self.exe.get(key)
        if exe is None:
            t = time.perf_counter()
            exe = self.exe[key] = self.jitted.lower(*args).compile()
            COMPILE_LOG.append((f"{self.label} {key[1]}", time.perf_counter() - t))
        return exe(*args)


def wrap(fns: dict, names, label: str, jit: bool) -> dict:
    if jit:
        fns.update({k: Jit(fns[k], f"{label}.{k}") for k in names})
    return fns


@dataclass
class Ops:
    """One problem's functions. state is opaque (running statistics and what else the
    framework keeps); params is whatever is differentiated for dgamma/dbeta."""
    init: Callable[[], Any]                        # -> state, the framework's initial state
    given: Callable[[], Any]                       # -> state holding pb.running_mean/var (tracked)
    train: Callable[..., tuple]                    # (state, x, dy) -> y, dx, dgamma, dbeta, state
    infer: Callable[..., tuple]                    # (state, x, dy) -> y, dx, dgamma, dbeta
                                                   # (untracked: batch statistics, state unchanged)
    evaluate: Callable[..., Any]                   # (state, x) -> y (inference mode; untracked: batch stats)
    stats: Callable[[Any], tuple]                  # state -> (running_mean, running_var)


def play(pb: Problem, ops: Ops, device: str = "cpu") -> dict[str, np.ndarray]:
    """The protocol's scenario for ``pb.mode`` on JAX functions, on ``device`` ("cpu" or
    "gpu": arrays and compilations go to that platform's first device)."""
    with jax.default_device(jax.devices(device)[0]):
        return _play(pb, ops)


def _play(pb: Problem, ops: Ops) -> dict[str, np.ndarray]:
    out: dict[str, list] = {}
    x = [to_j(a, pb.dtype) for a in pb.x]
    dy = [to_j(a, pb.dtype) for a in pb.dy]

    def rec(y, dx, dg=None, db=None, state=None):
        out.setdefault("y", []).append(to_np(y))
        out.setdefault("dx", []).append(to_np(dx))
        if pb.affine and dg is not None:
            out.setdefault("dgamma", []).append(to_np(dg))
            out.setdefault("dbeta", []).append(to_np(db))
        if state is not None and pb.track_running_stats:
            rm, rv = ops.stats(state)
            out.setdefault("running_mean", []).append(to_np(rm))
            out.setdefault("running_var", []).append(to_np(rv))

    res: dict[str, np.ndarray] = {}
    if pb.mode == "train":
        state = ops.init()
        for k in range(pb.steps):
            y, dxk, dg, db, state = ops.train(state, x[k], dy[k])
            rec(y, dxk, dg, db, state)
        res["y_eval"] = to_np(ops.evaluate(state, x[-1]))
    elif pb.mode == "infer":   # without tracking, infer/evaluate use batch statistics (adapter docstrings)
        state = ops.given() if pb.track_running_stats else ops.init()
        y, dxk, dg, db = ops.infer(state, x[0], dy[0])
        rec(y, dxk, dg, db, state)
    else:
        raise ValueError(f"mode {pb.mode!r}: JAX adapters skip it in supports()")
    res.update({k: np.stack(v) for k, v in out.items()})
    return res


def common_skips(pb: Problem, api: str) -> str | None:
    if pb.momentum is None:
        return f"{api} has only an exponential moving average: no cumulative average (momentum=None)"
    if pb.mode == "frozen":
        return (f"{api} has no per-layer freeze: JAX users freeze parameters in the optimizer (optax), which "
                "leaves the layer's call unchanged; a training-mode call with frozen parameters is the 'train' "
                "scenario without parameter gradients (measured: batch statistics used, running statistics updated)")
    return None


def jax_devices() -> list[str]:
    return ["cpu"] + (["gpu"] if any(d.platform == "gpu" for d in jax.devices()) else [])
