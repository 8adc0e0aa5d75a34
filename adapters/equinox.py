"""Equinox: eqx.nn.BatchNorm under jax.vmap(axis_name="batch"), modes "batch" and "ema".

The layer sees one example, channels first, and is vmapped over the batch with the
documented pattern ``jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0,
None))`` (https://docs.kidger.site/equinox/examples/stateful/), so the channel axis must
be axis 1 of the batch: channels-last layouts are skipped. ``momentum`` d = 1 - f
(equinox/nn/_batch_norm.py BatchNorm.__call__: ``hidden_mean * self.momentum + mean * (1 -
self.momentum)``); ``channelwise_affine`` follows the case's affine flag; ``inference``
picks the mode; the state lives in an ``eqx.nn.State``.

Modes (equinox/nn/_batch_norm.py, equinox 0.13.8):
  "batch"  training normalises with the batch statistics; the state holds a zero-debiased
           EMA (hidden, counter) and inference divides by ``1 - momentum**counter``. The
           running statistics reported are that quotient, what inference uses.
  "ema"    (what the default "legacy" maps to) training normalises with the running EMA,
           which is set to the batch statistics on the first call: the training forward is
           not batch normalisation after step 1, which the reference cannot express, so
           "train" cases are skipped; "infer" runs.
Loaded running statistics ("infer") are placed as a checkpoint of a long training would
hold them: mode "batch" with counter 2**30, so 1 - momentum**counter == 1 and hidden is
the statistic itself; mode "ema" with the buffers set and first_time False.

Precision: ``dtype`` (state, weight and bias) is the case's parameter dtype: float32 for
16-bit inputs (statistics are then computed in the input dtype, the output is promoted to
float32 by the float32 weight, as equinox returns it), float64 for float64 (x64 enabled
on import by adapters/_jax.py).

Compilation: eps and momentum are static fields of eqx.nn.BatchNorm; the traced
functions set them on a shallow copy of the layer (object.__setattr__, as the frozen
dataclass's own __init__ does) to traced weakly typed scalars (adapters/_jax.py), so one
executable serves every case of one shape, dtype and structure.

track_running_stats=False: a call with inference=False normalises with the batch
statistics; the updated state is discarded.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np

from ._jax import jax, jnp, JaxHooks, Ops, common_skips, to_j, wrap
from .protocol import Problem

_CACHE: dict = {}


def _fns(cfg, jit: bool):
    key = (cfg, jit)
    if key in _CACHE:
        return _CACHE[key]
    import equinox as eqx
    mode, pdt, C, aff = cfg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bn = eqx.nn.BatchNorm(C, axis_name="batch", eps=1e-5, channelwise_affine=aff, momentum=0.99,
                              dtype=jnp.dtype(pdt), mode=mode)
    state0 = eqx.nn.State(bn)

    def fresh():  # an eqx.nn.State is single-use ("Attempted to use old state"); clone as its message says
        leaves, tree = jax.tree_util.tree_flatten(state0)
        return jax.tree_util.tree_unflatten(tree, leaves)

    def layer(hp):
        m = copy.copy(bn)
        object.__setattr__(m, "momentum", hp[0])
        object.__setattr__(m, "eps", hp[1])
        return m

    def call(hp, wb, state, x, inference):
        m = layer(hp)
        m = eqx.tree_at(lambda m: (m.weight, m.bias), m, wb) if aff else m
        return jax.vmap(lambda x, s: m(x, s, inference=inference), axis_name="batch",
                        in_axes=(0, None), out_axes=(0, None))(x, state)

    def train(hp, wb, state, x, dy):
        y, vjp, new = jax.vjp(lambda x, wb: call(hp, wb, state, x, False), x, wb, has_aux=True)
        dx, dwb = vjp(dy.astype(y.dtype))
        return y, dx, dwb, new

    def infer(hp, wb, state, x, dy):
        y, vjp = jax.vjp(lambda x, wb: call(hp, wb, state, x, True)[0], x, wb)
        dx, dwb = vjp(dy.astype(y.dtype))
        return y, dx, dwb

    def stats(d, state):
        if mode == "ema":
            return state.get(bn.ema_state_index)
        counter = state.get(bn.batch_counter)
        hm, hv = state.get(bn.batch_state_index)
        scale = jnp.where(counter == 0, 1, 1 - d ** counter)   # BatchNorm.__call__, inference branch
        return hm / scale, hv / scale

    def given(rm, rv):
        if mode == "ema":
            s = fresh().set(bn.ema_state_index, (rm, rv))
            return s.set(bn.ema_first_time_index, jnp.array(False))
        s = fresh().set(bn.batch_state_index, (rm, rv))
        return s.set(bn.batch_counter, jnp.array(2 ** 30))

    fns = wrap({"fresh": fresh, "train": train, "infer": infer, "stats": stats, "given": given},
               ("train", "infer"), f"equinox.{mode}", jit)
    _CACHE[key] = fns
    return fns


class Equinox(JaxHooks):
    framework = "equinox"
    convention = "equinox"

    def __init__(self, mode: str = "batch", jit: bool = True):
        self.mode, self.jit = mode, jit
        self.name = f"equinox.{mode}" + (".jit" if jit else "")

    def version(self) -> str:
        from importlib import metadata
        return metadata.version("equinox")

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.axis != 1:
            return ("eqx.nn.BatchNorm takes one example of shape (input_size, dim_1, ...) under jax.vmap: the "
                    "channel is axis 1 of the batch (equinox/nn/_batch_norm.py BatchNorm.__call__)")
        if self.mode == "ema" and pb.mode == "train":
            return ("mode='ema' normalises training batches with the running EMA after the first call "
                    "(equinox/nn/_batch_norm.py: mean = (1 - momentum) * batch_mean + momentum * running_mean, "
                    "then _norm(x, mean, var)): not batch normalisation, which the reference cannot express")
        return common_skips(pb, "eqx.nn.BatchNorm (equinox/nn/_batch_norm.py)")

    def ops(self, pb: Problem) -> Ops:
        return self._ops(pb, _fns((self.mode, pb.param_dtype, pb.channels, pb.affine), self.jit))

    @staticmethod
    def _ops(pb: Problem, f: dict, new_state=lambda s: s) -> Ops:
        """The problem's Ops over the functions ``f`` (this module's or the synchronised variant's,
        adapters/jax_sync.py); ``new_state`` post-processes the state a training step returns."""
        hp = (1.0 - pb.momentum, float(pb.eps))
        wb = (to_j(pb.gamma, pb.param_dtype), to_j(pb.beta, pb.param_dtype)) if pb.affine else ()

        def grads(dwb):
            return dwb if pb.affine else (None, None)

        def train(s, x, dy):
            y, dx, dwb, new = f["train"](hp, wb, s, x, dy)
            return (y, dx, *grads(dwb), new_state(new))

        def infer(s, x, dy):
            if not pb.track_running_stats:
                return train(s, x, dy)[:4]
            y, dx, dwb = f["infer"](hp, wb, s, x, dy)
            return (y, dx, *grads(dwb))

        def evaluate(s, x):  # the inference forward of ``infer`` (one executable for both; dy unused)
            return infer(s, x, x)[0]

        return Ops(init=f["fresh"],
                   given=lambda m, v: f["given"](to_j(m, pb.param_dtype), to_j(v, pb.param_dtype)),
                   train=train, infer=infer, evaluate=evaluate, stats=lambda s: f["stats"](hp[0], s))
