"""Flax: flax.linen.BatchNorm and flax.nnx.BatchNorm, eager and under jax.jit.

Also the JAX scenario driver (``play``) and the compile cache (``Jit``) that the Haiku
and Equinox adapters reuse; this module imports flax only inside the factory.

Conventions: preset "flax". The case's new-batch weight f becomes Flax's ``momentum``
d = 1 - f (flax/linen/normalization.py BatchNorm.__call__:
``ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var``).
Constructor options as users set them: ``momentum``, ``epsilon``, ``axis`` (any axis, so
every layout runs), ``use_bias``/``use_scale`` for affine; ``use_running_average`` picks
the mode, running statistics live in the ``batch_stats`` collection (linen) or in
``nnx.BatchStat`` variables (nnx).

Precision: x64 is enabled at import (``jax.config.update("jax_enable_x64", True)``) so
float64 cases run in float64; float32 cases keep float32 because every array the
adapters create has an explicit dtype. 16-bit inputs use Flax's mixed-precision
arguments as users write them: ``dtype=<input dtype>`` (computation/output dtype) and
``param_dtype=float32``; the statistics are float32 anyway
(flax/linen/normalization.py _compute_stats: ``dtype = jnp.promote_types(dtype,
jnp.float32)`` with force_float32_reductions=True). float64 uses ``param_dtype=float64``.

Gradients: jax.vjp of the apply function with respect to x and the parameters; in
training mode through the batch statistics, in inference mode with the running
statistics as constants (they are not differentiated inputs).

Freezing: Flax has no per-layer freeze flag; users freeze parameters by leaving them out
of the optimizer (optax.set_to_zero / multi_transform, Flax transfer-learning guide
https://flax.readthedocs.io/en/latest/guides/training_techniques/transfer_learning.html).
That does not touch ``use_running_average``, so "frozen" cases are skipped (the
training-mode call they would make is the "train" scenario).

track_running_stats=False: Flax has no such option; users who want batch statistics at
evaluation call with use_running_average=False and discard the updated ``batch_stats``,
which is what the adapter does.

``use_fast_variance``: True (the default, one-pass E[x^2]-E[x]^2 clamped at 0,
_compute_stats) in "flax.linen"/"flax.nnx"; the ".twopass" variants pass False
(two-pass E[(x-E[x])^2]).
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


class Jit:
    """jax.jit with an explicit executable cache keyed by the arguments' tree structure,
    shapes and dtypes, compiled ahead of time so the compile cost is measured
    (https://docs.jax.dev/en/latest/aot.html: jit(f).lower(*args).compile())."""

    def __init__(self, fn: Callable, label: str):
        self.jitted, self.label, self.exe = jax.jit(fn), label, {}

    def __call__(self, *args):
        leaves, tree = jax.tree_util.tree_flatten(args)
        key = (tree, tuple((np.shape(a), jnp.result_type(a)) for a in leaves))
        exe = self.exe.get(key)
        if exe is None:
            t = time.perf_counter()
            exe = self.exe[key] = self.jitted.lower(*args).compile()
            COMPILE_LOG.append((f"{self.label} {key[1]}", time.perf_counter() - t))
        return exe(*args)


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


def play(pb: Problem, ops: Ops) -> dict[str, np.ndarray]:
    """The protocol's scenario for ``pb.mode`` (adapters/protocol.py) on JAX functions."""
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


# --------------------------------------------------------------------------- Flax --
_CACHE: dict[tuple, Any] = {}


def _cfg(pb: Problem, fast: bool) -> tuple:
    return (pb.dtype, pb.param_dtype, len(pb.shape), pb.axis, 1.0 - pb.momentum, pb.eps, pb.affine, fast)


def _kw(cfg) -> dict:
    dtype, pdt, _, axis, d, eps, aff, fast = cfg
    return dict(axis=axis, momentum=d, epsilon=eps, use_bias=aff, use_scale=aff, use_fast_variance=fast,
                dtype=jdtype(dtype) if dtype in ("float16", "bfloat16") else None, param_dtype=jdtype(pdt))


def _linen_fns(cfg, jit: bool):
    """Pure functions of (params, batch_stats, x, dy) for one configuration."""
    key = ("linen", cfg, jit)
    if key in _CACHE:
        return _CACHE[key]
    import flax.linen as nn
    bn = nn.BatchNorm(**_kw(cfg))

    def train(params, stats, x, dy):
        def f(x, params):
            y, upd = bn.apply({"params": params, "batch_stats": stats}, x, use_running_average=False,
                              mutable=["batch_stats"])
            return y, upd["batch_stats"]
        y, vjp, new = jax.vjp(f, x, params, has_aux=True)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp, new

    def infer(params, stats, x, dy):
        y, vjp = jax.vjp(lambda x, p: bn.apply({"params": p, "batch_stats": stats}, x, use_running_average=True),
                         x, params)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp

    def evaluate(params, stats, x):
        return bn.apply({"params": params, "batch_stats": stats}, x, use_running_average=True)

    fns = {"bn": bn, "train": train, "infer": infer, "evaluate": evaluate}
    if jit:
        fns.update({k: Jit(fns[k], f"flax.linen.{k}") for k in ("train", "infer", "evaluate")})
    _CACHE[key] = fns
    return fns


def _nnx_fns(cfg, channels: int, jit: bool):
    """nnx through its functional API (nnx.split / nnx.merge,
    https://flax.readthedocs.io/en/latest/nnx_basics.html), so jax.vjp and jax.jit apply."""
    key = ("nnx", cfg, channels, jit)
    if key in _CACHE:
        return _CACHE[key]
    from flax import nnx
    bn = nnx.BatchNorm(channels, rngs=nnx.Rngs(0), **_kw(cfg))
    graph, params0, stats0 = nnx.split(bn, nnx.Param, nnx.BatchStat)

    def call(params, stats, x, use_running_average):
        m = nnx.merge(graph, params, stats)
        y = m(x, use_running_average=use_running_average)
        return y, nnx.state(m, nnx.BatchStat)

    def train(params, stats, x, dy):
        # stats ride along as a primal so nnx mutates them at the vjp's trace level
        # (flax.errors.TraceContextError otherwise); their cotangent is discarded
        y, vjp, new = jax.vjp(lambda x, p, s: call(p, s, x, False), x, params, stats, has_aux=True)
        dx, dp, _ = vjp(dy.astype(y.dtype))
        return y, dx, dp, new

    def infer(params, stats, x, dy):
        y, vjp = jax.vjp(lambda x, p: call(p, stats, x, True)[0], x, params)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp

    def evaluate(params, stats, x):
        return call(params, stats, x, True)[0]

    fns = {"params0": params0, "stats0": stats0, "train": train, "infer": infer, "evaluate": evaluate}
    if jit:
        fns.update({k: Jit(fns[k], f"flax.nnx.{k}") for k in ("train", "infer", "evaluate")})
    _CACHE[key] = fns
    return fns


class _FlaxBase:
    framework = "flax"
    convention = "flax"
    fast_variance = True
    jit = False

    def version(self) -> str:
        import flax
        return flax.__version__

    def devices(self) -> list[str]:
        return ["cpu"] + (["gpu"] if any(d.platform == "gpu" for d in jax.devices()) else [])

    def supports(self, pb: Problem, device: str) -> str | None:
        return common_skips(pb, "flax BatchNorm (flax/linen/normalization.py)")

    def _params(self, pb: Problem):
        pdt = pb.param_dtype
        return {"scale": to_j(pb.gamma, pdt), "bias": to_j(pb.beta, pdt)} if pb.affine else {}

    def _given(self, pb: Problem):
        # float32 running statistics as Flax creates them (BatchNorm.__call__ / nnx __init__:
        # jnp.zeros(..., jnp.float32)), float64 when the case is float64 and the API keeps it
        sdt = "float64" if pb.dtype == "float64" else "float32"
        return {"mean": to_j(pb.running_mean, sdt), "var": to_j(pb.running_var, sdt)}

    def run(self, pb: Problem, device: str) -> dict[str, np.ndarray]:
        with jax.default_device(jax.devices(device)[0]):
            return play(pb, self._ops(pb))


class Linen(_FlaxBase):
    name = "flax.linen"

    def _ops(self, pb: Problem) -> Ops:
        f = _linen_fns(_cfg(pb, self.fast_variance), self.jit)
        p = self._params(pb)

        def init():  # as users do: bn.init(...) gives zeros/ones float32 batch_stats
            return f["bn"].init(jax.random.key(0), to_j(pb.x[0], pb.dtype), use_running_average=False)["batch_stats"]

        def train(s, x, dy):
            y, dx, dp, new = f["train"](p, s, x, dy)
            return y, dx, dp.get("scale"), dp.get("bias"), new

        def infer(s, x, dy):
            if not pb.track_running_stats:  # use_running_average=False, updated batch_stats discarded
                return train(s, x, dy)[:4]
            y, dx, dp = f["infer"](p, s, x, dy)
            return y, dx, dp.get("scale"), dp.get("bias")

        def evaluate(s, x):
            return f["evaluate"](p, s, x) if pb.track_running_stats else train(s, x, x)[0]

        return Ops(init=init, given=lambda: self._given(pb), train=train, infer=infer,
                   evaluate=evaluate, stats=lambda s: (s["mean"], s["var"]))


class Nnx(_FlaxBase):
    name = "flax.nnx"

    def _ops(self, pb: Problem) -> Ops:
        from flax import nnx
        f = _nnx_fns(_cfg(pb, self.fast_variance), pb.channels, self.jit)
        params = nnx.State(dict(f["params0"]))
        if pb.affine:
            params = jax.tree.map(lambda v: v, params)
            params["scale"] = params["scale"].replace(to_j(pb.gamma, pb.param_dtype))
            params["bias"] = params["bias"].replace(to_j(pb.beta, pb.param_dtype))

        def given():  # what users write: bn.mean[...] = ...; nnx keeps the variable's float32
            s = jax.tree.map(lambda v: v, f["stats0"])
            s["mean"] = s["mean"].replace(jnp.asarray(pb.running_mean, s["mean"].value.dtype))
            s["var"] = s["var"].replace(jnp.asarray(pb.running_var, s["var"].value.dtype))
            return s

        def grads(dp):
            return (dp["scale"].value, dp["bias"].value) if pb.affine else (None, None)

        def train(s, x, dy):
            y, dx, dp, new = f["train"](params, s, x, dy)
            return (y, dx, *grads(dp), new)

        def infer(s, x, dy):
            if not pb.track_running_stats:  # use_running_average=False, updated stats discarded
                return train(s, x, dy)[:4]
            y, dx, dp = f["infer"](params, s, x, dy)
            return (y, dx, *grads(dp))

        def evaluate(s, x):
            return f["evaluate"](params, s, x) if pb.track_running_stats else train(s, x, x)[0]

        return Ops(init=lambda: f["stats0"], given=given, train=train, infer=infer, evaluate=evaluate,
                   stats=lambda s: (s["mean"].value, s["var"].value))


def _variants(cls, base: str):
    out = []
    for jit in (False, True):
        for fast in (True, False):
            name = base + (".jit" if jit else "") + ("" if fast else ".twopass")
            out.append(type(cls.__name__, (cls,), {"name": name, "jit": jit, "fast_variance": fast})())
    return out


def adapters():
    import flax  # noqa: F401 -- ImportError here means the framework is not installed
    return _variants(Linen, "flax.linen") + _variants(Nnx, "flax.nnx")
