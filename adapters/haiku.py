"""Haiku: hk.BatchNorm under hk.transform_with_state, eager and under jax.jit.

Conventions: preset "haiku". ``decay_rate`` d = 1 - f (haiku/_src/moving_averages.py
ExponentialMovingAverage.__call__: ``hidden = hidden * decay + value * (one - decay)``);
the moving averages are zero-initialised and debiased (``average /= (one -
jnp.power(decay, counter))``, zero_debias=True by default): schedule "debiased".
``create_scale``/``create_offset`` follow the case's affine flag; ``data_format``
"channels_last" or "channels_first" gives the channel axis (haiku/_src/batch_norm.py
BatchNorm.__init__), so every layout runs. ``is_training`` picks the mode; the running
statistics reported are the EMA state's ``average`` entries, which inference reads
(BatchNorm.__call__: ``mean = self.mean_ema.average``).

track_running_stats=False: ``is_training=False, test_local_stats=True`` normalises with
the batch statistics at test time (BatchNorm.__call__ docstring), as the protocol asks.

Precision: hk.BatchNorm computes in the input dtype, with parameters in the input dtype
(``w_dtype = inputs.dtype``). For 16-bit inputs users keep BatchNorm in float32 with a
mixed-precision policy (haiku examples/imagenet/train.py:
``hk.mixed_precision.set_policy(hk.BatchNorm, mp_bn_policy)``; jmp policy
params=float32, compute=float32, output=<input dtype>), which this adapter sets.
float64 needs x64, enabled on import by adapters/_jax.py.

Compilation: ``decay_rate`` and ``eps`` are arguments of the transformed function (traced,
weakly typed scalars: adapters/_jax.py), so one executable serves every case of one
shape, dtype and structure.

Gradients: jax.vjp of ``apply`` with respect to x and the parameters (training mode
through the batch statistics; inference with the EMA averages as constants).
"""
from __future__ import annotations

import numpy as np

from ._jax import jax, JaxHooks, Ops, common_skips, jdtype, to_j, wrap
from .protocol import Problem

_CACHE: dict = {}


def _fns(cfg, jit: bool):
    key = (cfg, jit)
    if key in _CACHE:
        return _CACHE[key]
    import haiku as hk
    import jmp
    dtype, ndim, axis, aff = cfg

    def fwd(x, is_training, test_local_stats, d, eps):
        if dtype in ("float16", "bfloat16"):
            hk.mixed_precision.set_policy(hk.BatchNorm, jmp.get_policy(f"params=float32,compute=float32,output={dtype}"))
        else:
            hk.mixed_precision.clear_policy(hk.BatchNorm)
        bn = hk.BatchNorm(create_scale=aff, create_offset=aff, decay_rate=d, eps=eps,
                          data_format="channels_first" if axis == 1 and ndim > 2 else "channels_last")
        return bn(x, is_training=is_training, test_local_stats=test_local_stats)

    t = hk.transform_with_state(fwd)

    def train(hp, params, state, x, dy):
        def f(x, p):
            return t.apply(p, state, None, x, True, False, *hp)
        y, vjp, new = jax.vjp(f, x, params, has_aux=True)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp, new

    def infer(hp, params, state, x, dy, local=False):
        y, vjp = jax.vjp(lambda x, p: t.apply(p, state, None, x, False, local, *hp)[0], x, params)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp

    # init under jit too in the jitted variant (is_training, test_local_stats static): run eagerly,
    # its forward pass compiles one executable per primitive and shape (measured: half the
    # adapter's compile time)
    fns = {"init": jax.jit(t.init, static_argnums=(2, 3)) if jit else t.init, "train": train, "infer": infer,
           "infer_local": lambda hp, p, s, x, dy: infer(hp, p, s, x, dy, True)}
    wrap(fns, [k for k in fns if k != "init"], "haiku", jit)
    _CACHE[key] = fns
    return fns


def loaded(state0: dict, names, mean, var, dtype: str) -> dict:
    """The EMA state of a long-trained layer holding these statistics, as a checkpoint holds it:
    hidden == average and a counter so large that the debiasing divisor 1 - d**counter is 1, so
    training continues as a plain EMA from them (reference RunningRule.resumed). With counter 0
    the first step would discard them (moving_averages.py: hidden starts at zero)."""
    s = {k: dict(v) for k, v in state0.items()}
    for name, value in zip(names, (mean, var)):
        v = to_j(np.reshape(value, s[name]["average"].shape), dtype)
        s[name].update(average=v, hidden=v, counter=jax.numpy.asarray(2 ** 30, s[name]["counter"].dtype))
    return s


class Haiku(JaxHooks):
    framework = "dm-haiku"
    convention = "haiku"
    name = "haiku"

    def __init__(self, jit: bool = True):
        self.jit = jit

    def version(self) -> str:
        from importlib import metadata
        return metadata.version("dm-haiku")

    def supports(self, pb: Problem, device: str) -> str | None:
        return common_skips(pb, "hk.BatchNorm (haiku/_src/moving_averages.py)")

    def ops(self, pb: Problem) -> Ops:
        cfg = (pb.dtype, len(pb.shape), pb.axis, pb.affine)
        f = _fns(cfg, self.jit)
        hp = (1.0 - pb.momentum, float(pb.eps))
        # as users do: init in training mode with a batch (init with is_training=False raises "No value
        # for 'average'", measured). The state it returns depends on the configuration and the channel
        # count only, except the average, which init sets to the init batch's statistics (measured) and
        # the first training step replaces (zero-debiased EMA): one cached init with a dummy batch of the
        # case's rank serves every training case. A "fresh" case initialises with its own batch, in the
        # mode it names, exactly as a user would before calling the layer.
        if pb.mode == "fresh":
            ikey = ("fresh", cfg, pb.case_id)
            _CACHE[ikey] = f["init"](jax.random.key(0), to_j(pb.x[0], pb.dtype), pb.init_train,
                                      not pb.track_running_stats, *hp)
        else:
            ikey = ("init", cfg, pb.channels)
            if ikey not in _CACHE:
                dummy = np.zeros([pb.channels if i == pb.axis else 2 for i in range(len(pb.shape))])
                _CACHE[ikey] = f["init"](jax.random.key(0), to_j(dummy, pb.dtype), True, False, *hp)
        params, state0 = _CACHE.pop(ikey) if pb.mode == "fresh" else _CACHE[ikey]
        return self._ops(pb, f, hp, params, state0)

    @staticmethod
    def _ops(pb: Problem, f: dict, hp: tuple, params, state0, new_state=lambda s: s) -> Ops:
        """The problem's Ops over the transformed functions ``f`` (this module's or the synchronised
        variant's, adapters/jax_sync.py), from the initial ``params`` and ``state0``; ``new_state``
        post-processes the state a training step returns."""
        mod = next(iter(params)) if params else None
        if pb.affine:
            shp = params[mod]["scale"].shape   # (1, .., C, .., 1): haiku's broadcast shape
            params = {mod: {"scale": to_j(np.reshape(pb.gamma, shp), pb.param_dtype),
                            "offset": to_j(np.reshape(pb.beta, shp), pb.param_dtype)}}
        names = sorted(state0)                 # ".../mean_ema", ".../var_ema"
        pdt = jdtype(pb.param_dtype)

        def given(mean, var):
            return loaded(state0, names, mean, var, pb.param_dtype)

        def grads(dp):
            # reshaped on the host (NumPy): an eager JAX reshape compiles once per shape
            return (np.asarray(dp[mod]["scale"]).reshape(-1), np.asarray(dp[mod]["offset"]).reshape(-1)) \
                if pb.affine else (None, None)

        def train(s, x, dy):
            y, dx, dp, new = f["train"](hp, params, s, x, dy)
            return (y, dx, *grads(dp), new_state(new))

        local = "" if pb.track_running_stats else "_local"   # test_local_stats=True

        def infer(s, x, dy):
            y, dx, dp = f["infer" + local](hp, params, s, x, dy)
            return (y, dx, *grads(dp))

        def evaluate(s, x):  # the inference forward of ``infer`` (one executable for both; dy unused)
            return infer(s, x, x)[0]

        def stats(s):
            return tuple(np.asarray(s[n]["average"]).reshape(-1).astype(pdt) for n in names[:2])

        return Ops(init=lambda: state0, given=given, train=train, infer=infer, evaluate=evaluate, stats=stats)
