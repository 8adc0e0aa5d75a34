"""Flax: flax.linen.BatchNorm and flax.nnx.BatchNorm, eager and under jax.jit.

The JAX scenario driver and compile cache live in adapters/_jax.py (shared with Haiku and
Equinox); this module imports flax only inside the factory. Modules are constructed
inside the traced functions with ``momentum`` and ``epsilon`` as traced (weakly typed)
scalars, so every case of one shape, dtype and structure shares one executable.

Conventions: preset "flax". The case's new-batch weight f becomes Flax's ``momentum``
d = 1 - f (flax/linen/normalization.py BatchNorm.__call__:
``ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var``).
Constructor options as users set them: ``momentum``, ``epsilon``, ``axis`` (any axis, so
every layout runs), ``use_bias``/``use_scale`` for affine; ``use_running_average`` picks
the mode, running statistics live in the ``batch_stats`` collection (linen) or in
``nnx.BatchStat`` variables (nnx).

Precision: x64 is enabled by adapters/_jax.py; float32 cases keep float32 because every
array the adapters create has an explicit dtype. 16-bit inputs use Flax's mixed-precision
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

from typing import Any

import numpy as np

from ._jax import jax, jnp, JaxHooks, Ops, common_skips, jdtype, to_j, wrap
from .protocol import Problem

# --------------------------------------------------------------------------- Flax --
_CACHE: dict[tuple, Any] = {}


def _cfg(pb: Problem, fast: bool) -> tuple:
    """What an executable specialises on (structure and dtypes); not eps or momentum."""
    return (pb.dtype, pb.param_dtype, pb.axis, pb.affine, fast)


def _kw(cfg, d, eps) -> dict:
    dtype, pdt, axis, aff, fast = cfg
    return dict(axis=axis, momentum=d, epsilon=eps, use_bias=aff, use_scale=aff, use_fast_variance=fast,
                dtype=jdtype(dtype) if dtype in ("float16", "bfloat16") else None, param_dtype=jdtype(pdt))


def _linen_fns(cfg, jit: bool):
    """Pure functions of (hp=(momentum d, eps), params, batch_stats, x, dy) for one configuration."""
    key = ("linen", cfg, jit)
    if key in _CACHE:
        return _CACHE[key]
    import flax.linen as nn

    def bn(hp):
        return nn.BatchNorm(**_kw(cfg, *hp))

    def train(hp, params, stats, x, dy):
        def f(x, params):
            y, upd = bn(hp).apply({"params": params, "batch_stats": stats}, x, use_running_average=False,
                                  mutable=["batch_stats"])
            return y, upd["batch_stats"]
        y, vjp, new = jax.vjp(f, x, params, has_aux=True)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp, new

    def infer(hp, params, stats, x, dy):
        y, vjp = jax.vjp(lambda x, p: bn(hp).apply({"params": p, "batch_stats": stats}, x,
                                                   use_running_average=True), x, params)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp

    fns = wrap({"bn": bn, "train": train, "infer": infer}, ("train", "infer"), "flax.linen", jit)
    _CACHE[key] = fns
    return fns


def _nnx_fns(cfg, channels: int, jit: bool):
    """nnx through its functional API (nnx.split / nnx.merge,
    https://flax.readthedocs.io/en/latest/nnx_basics.html), so jax.vjp and jax.jit apply.
    momentum and epsilon are plain attributes of the module (static in its graphdef); the
    merged module gets the traced values before the call."""
    key = ("nnx", cfg, channels, jit)
    if key in _CACHE:
        return _CACHE[key]
    from flax import nnx
    bn = nnx.BatchNorm(channels, rngs=nnx.Rngs(0), **_kw(cfg, 0.99, 1e-5))
    graph, params0, stats0 = nnx.split(bn, nnx.Param, nnx.BatchStat)

    def call(hp, params, stats, x, use_running_average):
        m = nnx.merge(graph, params, stats)
        m.momentum, m.epsilon = hp
        y = m(x, use_running_average=use_running_average)
        return y, nnx.state(m, nnx.BatchStat)

    def train(hp, params, stats, x, dy):
        # stats ride along as a primal so nnx mutates them at the vjp's trace level
        # (flax.errors.TraceContextError otherwise); their cotangent is discarded
        y, vjp, new = jax.vjp(lambda x, p, s: call(hp, p, s, x, False), x, params, stats, has_aux=True)
        dx, dp, _ = vjp(dy.astype(y.dtype))
        return y, dx, dp, new

    def infer(hp, params, stats, x, dy):
        y, vjp = jax.vjp(lambda x, p: call(hp, p, stats, x, True)[0], x, params)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp

    fns = wrap({"params0": params0, "stats0": stats0, "train": train, "infer": infer},
               ("train", "infer"), "flax.nnx", jit)
    _CACHE[key] = fns
    return fns


class _FlaxBase(JaxHooks):
    framework = "flax"
    convention = "flax"

    def __init__(self, jit: bool = True, fast_variance: bool = True):
        self.jit, self.fast_variance = jit, fast_variance

    def version(self) -> str:
        from importlib import metadata
        return metadata.version("flax")

    def supports(self, pb: Problem, device: str) -> str | None:
        return common_skips(pb, "flax BatchNorm (flax/linen/normalization.py)")

    def _params(self, pb: Problem):
        pdt = pb.param_dtype
        return {"scale": to_j(pb.gamma, pdt), "bias": to_j(pb.beta, pdt)} if pb.affine else {}

    def _given(self, pb: Problem, mean, var):
        # float32 running statistics as Flax creates them (BatchNorm.__call__ / nnx __init__:
        # jnp.zeros(..., jnp.float32)), float64 when the case is float64 and the API keeps it
        sdt = "float64" if pb.dtype == "float64" else "float32"
        return {"mean": to_j(mean, sdt), "var": to_j(var, sdt)}

    def hp(self, pb: Problem):
        return (1.0 - pb.momentum, float(pb.eps))


class Linen(_FlaxBase):
    name = "flax.linen"

    def ops(self, pb: Problem) -> Ops:
        hp = self.hp(pb)
        f = _linen_fns(_cfg(pb, self.fast_variance), self.jit)
        p = self._params(pb)

        def init():  # as users do: bn.init(key, dummy batch, use_running_average=...) gives the batch_stats
            # Flax creates. They depend on the configuration and the channel count only (Flax does not
            # update them while initialising: BatchNorm.__call__ ``if not self.is_initializing()``), so
            # one init serves every shape with that many channels: a dummy batch
            # of the case's rank with 2 along every non-channel axis, as a user's dummy batch would be.
            training = pb.mode != "fresh" or pb.init_train
            key = ("linen-init", _cfg(pb, self.fast_variance), len(pb.shape), pb.channels, training)
            if key not in _CACHE:
                dummy = np.zeros([pb.channels if i == pb.axis else 2 for i in range(len(pb.shape))])
                def make(rng, x):
                    return f["bn"](hp).init(rng, x, use_running_average=not training)["batch_stats"]
                # jitted in the jitted variant: eagerly, the init's forward pass compiles one executable
                # per primitive and shape (measured: about a third of the adapter's compile time)
                _CACHE[key] = (jax.jit(make) if self.jit else make)(jax.random.key(0), to_j(dummy, pb.dtype))
            return _CACHE[key]

        def train(s, x, dy):
            y, dx, dp, new = f["train"](hp, p, s, x, dy)
            return y, dx, dp.get("scale"), dp.get("bias"), new

        def infer(s, x, dy):
            if not pb.track_running_stats:  # use_running_average=False, updated batch_stats discarded
                return train(s, x, dy)[:4]
            y, dx, dp = f["infer"](hp, p, s, x, dy)
            return y, dx, dp.get("scale"), dp.get("bias")

        def evaluate(s, x):  # the inference forward of ``infer`` (one executable for both; dy unused)
            return infer(s, x, x)[0]

        return Ops(init=init, given=lambda m, v: self._given(pb, m, v), train=train, infer=infer,
                   evaluate=evaluate, stats=lambda s: (s["mean"], s["var"]))


class Nnx(_FlaxBase):
    name = "flax.nnx"

    def ops(self, pb: Problem) -> Ops:
        from flax import nnx
        hp = self.hp(pb)
        f = _nnx_fns(_cfg(pb, self.fast_variance), pb.channels, self.jit)
        params = nnx.State(dict(f["params0"]))
        if pb.affine:
            params = jax.tree.map(lambda v: v, params)
            params["scale"] = params["scale"].replace(to_j(pb.gamma, pb.param_dtype))
            params["bias"] = params["bias"].replace(to_j(pb.beta, pb.param_dtype))

        def given(mean, var):  # what users write: bn.mean[...] = ...; nnx keeps the variable's float32
            s = jax.tree.map(lambda v: v, f["stats0"])
            s["mean"] = s["mean"].replace(jnp.asarray(mean, s["mean"].value.dtype))
            s["var"] = s["var"].replace(jnp.asarray(var, s["var"].value.dtype))
            return s

        def grads(dp):
            return (dp["scale"].value, dp["bias"].value) if pb.affine else (None, None)

        def train(s, x, dy):
            y, dx, dp, new = f["train"](hp, params, s, x, dy)
            return (y, dx, *grads(dp), new)

        def infer(s, x, dy):
            if not pb.track_running_stats:  # use_running_average=False, updated stats discarded
                return train(s, x, dy)[:4]
            y, dx, dp = f["infer"](hp, params, s, x, dy)
            return (y, dx, *grads(dp))

        def evaluate(s, x):  # the inference forward of ``infer`` (one executable for both; dy unused)
            return infer(s, x, x)[0]

        return Ops(init=lambda: f["stats0"], given=given, train=train, infer=infer, evaluate=evaluate,
                   stats=lambda s: (s["mean"].value, s["var"].value))
