"""jax.example_libraries.stax.BatchNorm: JAX's example layer library.

``init_fun, apply_fun = stax.BatchNorm(axis, epsilon, center, scale)``; ``apply_fun((beta,
gamma), x)`` (jax/example_libraries/stax.py BatchNorm). Preset "stax".

What it is: a pure function of (beta, gamma) and the batch. There is no state (the
parameters are beta and gamma only, of the shape of the non-reduced axes) and no mode:
``apply_fun(params, x, **kwargs)`` ignores its keyword arguments (measured: mode='test' gives
a bit-identical output, conformance/findings/probes/alt_apis/s1_stax.py, s1_stax.out), so every call, inference
included, normalises with the statistics of the batch it is given. The suite runs it on
the cases without running statistics (notrs), where the reference does exactly that;
tracked cases are skipped. ``axis`` is the reduction axes: every axis but the case's
channel axis, so every layout runs.

Normalisation: jax.nn.standardize(x, axis, epsilon) with its default algorithm="fast"
(jax/_src/nn/functions.py standardize: variance = mean(x^2) - mean(x)^2, clipped at 0),
a one-pass biased variance in the input dtype. center/scale follow the case's affine flag.

Precision: x64 enabled by adapters/_jax.py; beta/gamma in the case's parameter dtype
(float32 for 16-bit inputs: the product promotes y to float32, which is what stax returns).

Gradients: jax.vjp of apply_fun with respect to x and (beta, gamma), under jax.jit
(one executable per shape, dtype and structure; eps is a traced weak scalar).
"""
from __future__ import annotations

from ._jax import JaxHooks, Ops, jax, to_j, wrap
from .protocol import Problem

_CACHE: dict = {}


def _fns(cfg, jit: bool):
    key = (cfg, jit)
    if key in _CACHE:
        return _CACHE[key]
    from jax.example_libraries import stax
    ndim, axis, aff = cfg
    red = tuple(i for i in range(ndim) if i != axis)

    def apply(eps, params, x):
        _, apply_fun = stax.BatchNorm(axis=red, epsilon=eps, center=aff, scale=aff)
        return apply_fun(params, x)

    def step(eps, params, x, dy):
        y, vjp = jax.vjp(lambda x, p: apply(eps, p, x), x, params)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp

    fns = wrap({"step": step}, ("step",), "stax", jit)
    _CACHE[key] = fns
    return fns


class Stax(JaxHooks):
    framework = "jax"
    convention = "stax"
    name = "jax.stax"
    capabilities = ("forward", "grad")

    def __init__(self, jit: bool = True):
        self.jit = jit

    def version(self) -> str:
        from importlib import metadata
        return metadata.version("jax")

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.track_running_stats:
            return ("stax.BatchNorm keeps no running statistics and has no inference mode (jax/example_libraries/"
                    "stax.py BatchNorm: params are (beta, gamma) only; apply_fun(params, x, **kwargs) ignores its "
                    "kwargs): every call normalises with the batch's statistics, so only the cases without "
                    "running statistics (notrs) apply")
        if pb.mode == "frozen":
            return ("stax layers are pure functions: parameters are frozen in the optimizer "
                    "(jax.example_libraries.optimizers), which leaves the call unchanged")
        if pb.replicas:
            return "stax.BatchNorm has no cross-replica statistics (no axis_name)"
        return None

    def ops(self, pb: Problem) -> Ops:
        f = _fns((len(pb.shape), pb.axis, pb.affine), self.jit)
        eps = float(pb.eps)
        # stax's params are (beta, gamma), () for a disabled one
        params = (to_j(pb.beta, pb.param_dtype), to_j(pb.gamma, pb.param_dtype)) if pb.affine else ((), ())

        def call(s, x, dy):
            y, dx, dp = f["step"](eps, params, x, dy)
            db, dg = dp if pb.affine else (None, None)
            return y, dx, dg, db

        def train(s, x, dy):
            return (*call(s, x, dy), s)

        return Ops(init=lambda: None, given=lambda m, v: None, train=train, infer=call,
                   evaluate=lambda s, x: call(s, x, x)[0], stats=lambda s: (None, None))
