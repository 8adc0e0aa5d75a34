"""Synchronised (cross-replica) batch norm in the JAX family: flax.linen.BatchNorm and
flax.nnx.BatchNorm with ``axis_name``, hk.BatchNorm with ``cross_replica_axis``, and
eqx.nn.BatchNorm with ``axis_name=("batch", <device axis>)``, each under ``jax.shard_map``
over host CPU devices.

The replicas are host CPU devices: the worker process (adapters/registry.py ``worker_env``)
sets ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` before JAX starts, so these
variants run only in their own worker and only on "cpu". Each case's batch is split into
its replicas' shards (``Problem.replicas``, adapters/_replicas.py); a mesh of R devices
with one axis ``AXIS`` runs the layer on each shard, as a data-parallel JAX user writes it
(https://docs.jax.dev/en/latest/notebooks/shard_map.html):

    f = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(), P(AXIS)), out_specs=(P(AXIS), P(AXIS)))
    y, stats = f(params, stats, x)

Gradients: ``jax.vjp`` of the global function (the shard_map) with respect to x and the
parameters: dx comes back through the collectives (pmean transposes to pmean) and the
parameters' cotangent is summed over the replicas by shard_map's transpose of an
unmapped (P()) input, i.e. dgamma/dbeta summed over replicas as the reference asks.

Running statistics come back with a leading replica axis (out_specs P(AXIS)); replica 0's
are reported and replicas holding different values raise (``_replicas.agree``).

Unequal shards (shard sizes that differ): shard_map and pmap split an array evenly, so
every device holds the same number of rows. Flax offers ``mask=`` ("Binary array ...
indicating the positions for which the mean and variance should be computed",
flax/linen/normalization.py BatchNorm.__call__): the flax variants pad every shard with
zero rows to the largest and pass a mask marking the real rows, which is what JAX users do
for uneven batches. Equal shards are run without padding and without a mask. Haiku and
Equinox have no mask argument (hk.BatchNorm.__call__(inputs, is_training,
test_local_stats, scale, offset), haiku/_src/batch_norm.py; eqx.nn.BatchNorm.__call__(x,
state, *, key, inference), equinox/nn/_batch_norm.py): padding there would put the zero
rows into the statistics, which no user would knowingly do, so unequal cases are skipped
with that reason.

Each mapped function is compiled once per shape, dtype, structure and replica count
(adapters/_jax.py ``Jit``); eps and momentum are traced arguments as in the non-sync
adapters.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from . import _replicas as R
from ._jax import Jit, Ops, jax, jdtype, jnp, to_j
from .equinox import Equinox
from .flax import Linen, Nnx, _cfg, _kw
from .haiku import Haiku, loaded
from .protocol import Problem

AXIS = "replica"
_CACHE: dict = {}


def _mesh(n: int):
    from jax.sharding import Mesh
    cpus = jax.devices("cpu")
    if len(cpus) < n:
        raise RuntimeError(f"{n} replicas need {n} host CPU devices, JAX has {len(cpus)}: run in the worker "
                           "(XLA_FLAGS=--xla_force_host_platform_device_count=8 before JAX starts)")
    return Mesh(np.array(cpus[:n]), (AXIS,))


def _lead(tree):
    """Each leaf with a leading axis of 1: out_specs P(AXIS) then stacks the replicas' values."""
    return jax.tree.map(lambda a: jnp.asarray(a)[None], tree)


def _smap(fn, n: int, in_specs, out_specs, check_vma: bool = True):
    return jax.shard_map(fn, mesh=_mesh(n), in_specs=in_specs, out_specs=out_specs, check_vma=check_vma)


def _replica0(tree, what: str):
    """Replica 0's value of every leaf of a per-replica tree; raises if replicas disagree.
    ``a[0]`` keeps each leaf's weak type (Equinox's step counter is a weakly typed integer:
    a strong one would promote its debiasing factor, and so y, to float64 under x64)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    for a in leaves:
        R.agree(what, np.asarray(a))
    return jax.tree_util.tree_unflatten(treedef, [a[0] for a in leaves])


class _Sync:
    """What every JAX sync variant shares: CPU replicas only, replica cases only, and the
    padding / unpadding of the batch around a mapped step."""

    sibling = ""            # the non-sync variant running the other cases
    api = ""
    capabilities = ("forward", "running_stats", "grad", "replicas")
    masks = False           # the API can exclude padded rows from the statistics (mask=)

    def devices(self) -> list[str]:
        # never jax.devices() here: the suite asks in its own process, where JAX must not start
        return ["cpu"]

    def supports(self, pb: Problem, device: str) -> str | None:
        reason = R.only_replicas(pb, self.api, self.sibling)
        if reason:
            return reason
        if not R.equal(pb) and not self.masks:
            return self.unequal_reason
        return super().supports(dataclasses.replace(pb, replicas=None), device)

    unequal_reason = ""

    # the batch around a mapped step ----------------------------------------------------------
    def _pad(self, pb: Problem, x, dy=None):
        """x (and dy) as the devices' blocks, and the mask of the real rows (None for equal shards)."""
        if R.equal(pb):
            return jnp.asarray(x), (None if dy is None else jnp.asarray(dy)), None
        xp, rows = R.pad(np.asarray(x), pb)
        dyp = None if dy is None else jnp.asarray(R.pad(np.asarray(dy), pb)[0])
        mask = np.broadcast_to(rows.reshape((-1,) + (1,) * (xp.ndim - 1)), xp.shape)
        return jnp.asarray(xp), dyp, jnp.asarray(mask)

    def _unpad(self, pb: Problem, a):
        return a if R.equal(pb) else jnp.asarray(R.unpad(np.asarray(a), pb))


# ------------------------------------------------------------------------------ Flax linen --

def _linen_fns(cfg, n: int, masked: bool):
    key = ("linen", cfg, n, masked)
    if key in _CACHE:
        return _CACHE[key]
    import flax.linen as nn
    from jax.sharding import PartitionSpec as P

    def bn(hp):
        return nn.BatchNorm(axis_name=AXIS, **_kw(cfg, *hp))

    xs = (P(AXIS),) * (2 if masked else 1)     # x [, mask]

    def local_train(hp, params, stats, x, *mask):
        y, upd = bn(hp).apply({"params": params, "batch_stats": stats}, x, use_running_average=False,
                              mutable=["batch_stats"], mask=mask[0] if mask else None)
        return y, _lead(upd["batch_stats"])

    def local_infer(hp, params, stats, x):
        return bn(hp).apply({"params": params, "batch_stats": stats}, x, use_running_average=True)

    def train(hp, params, stats, x, dy, *mask):
        f = _smap(local_train, n, (P(), P(), P()) + xs, (P(AXIS), P(AXIS)))
        y, vjp, new = jax.vjp(lambda x, p: f(hp, p, stats, x, *mask), x, params, has_aux=True)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp, new

    def infer(hp, params, stats, x, dy):
        f = _smap(local_infer, n, (P(), P(), P(), P(AXIS)), P(AXIS))
        y, vjp = jax.vjp(lambda x, p: f(hp, p, stats, x), x, params)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp

    fns = {"bn": bn, "train": Jit(train, f"flax.linen.sync{n}.train"), "infer": Jit(infer, f"flax.linen.sync{n}.infer")}
    _CACHE[key] = fns
    return fns


class _FlaxSync(_Sync):
    masks = True
    api = "flax BatchNorm(axis_name=...) under jax.shard_map"

    def _ops(self, pb: Problem, fns, params, init, given, grads, stats_of) -> Ops:
        hp = self.hp(pb)

        def train(s, x, dy):
            xp, dyp, mask = self._pad(pb, x, dy)
            y, dx, dp, new = fns["train"](hp, params, s, xp, dyp, *(() if mask is None else (mask,)))
            return (self._unpad(pb, y), self._unpad(pb, dx), *grads(dp), _replica0(new, "running statistics"))

        def infer(s, x, dy):
            if not pb.track_running_stats:  # use_running_average=False, updated statistics discarded
                return train(s, x, dy)[:4]
            xp, dyp, _ = self._pad(pb, x, dy)   # inference runs no collective: padded rows change nothing
            y, dx, dp = fns["infer"](hp, params, s, xp, dyp)
            return (self._unpad(pb, y), self._unpad(pb, dx), *grads(dp))

        def evaluate(s, x):
            return infer(s, x, x)[0]

        return Ops(init=init, given=given, train=train, infer=infer, evaluate=evaluate, stats=stats_of)


class LinenSync(_FlaxSync, Linen):
    """flax.linen.BatchNorm(axis_name=AXIS) under jax.shard_map; unequal shards padded and masked."""
    name = "flax.linen.sync"
    sibling = "flax.linen.jit"

    def __init__(self, fast_variance: bool = True):
        super().__init__(jit=True, fast_variance=fast_variance)

    def ops(self, pb: Problem) -> Ops:
        cfg = _cfg(pb, self.fast_variance)
        fns = _linen_fns(cfg, len(pb.replicas), not R.equal(pb))
        p = self._params(pb)

        def init():  # bn.init outside the map: Flax skips the collective while initialising
            key = ("linen-init", cfg, pb.shape)  # (flax/linen/normalization.py BatchNorm.__call__)
            if key not in _CACHE:
                _CACHE[key] = fns["bn"](self.hp(pb)).init(jax.random.key(0), to_j(pb.x[0], pb.dtype),
                                                          use_running_average=False)["batch_stats"]
            return _CACHE[key]

        return self._ops(pb, fns, p, init, lambda m, v: self._given(pb, m, v),
                         lambda dp: (dp.get("scale"), dp.get("bias")), lambda s: (s["mean"], s["var"]))


# -------------------------------------------------------------------------------- Flax nnx --

def _nnx_fns(cfg, channels: int, n: int, masked: bool):
    key = ("nnx", cfg, channels, n, masked)
    if key in _CACHE:
        return _CACHE[key]
    from flax import nnx
    from jax.sharding import PartitionSpec as P
    bn = nnx.BatchNorm(channels, axis_name=AXIS, rngs=nnx.Rngs(0), **_kw(cfg, 0.99, 1e-5))
    graph, params0, stats0 = nnx.split(bn, nnx.Param, nnx.BatchStat)
    xs = (P(AXIS),) * (2 if masked else 1)

    def local(hp, params, stats, x, *mask, use_running_average):
        m = nnx.merge(graph, params, stats)
        m.momentum, m.epsilon = hp
        y = m(x, use_running_average=use_running_average, mask=mask[0] if mask else None)
        return y, _lead(nnx.state(m, nnx.BatchStat))

    def train(hp, params, stats, x, dy, *mask):
        f = _smap(lambda *a: local(*a, use_running_average=False), n, (P(), P(), P()) + xs, (P(AXIS), P(AXIS)))
        # stats ride along as a primal (nnx mutates them at the vjp's trace level); cotangent discarded
        y, vjp, new = jax.vjp(lambda x, p, s: f(hp, p, s, x, *mask), x, params, stats, has_aux=True)
        dx, dp, _ = vjp(dy.astype(y.dtype))
        return y, dx, dp, new

    def infer(hp, params, stats, x, dy):
        f = _smap(lambda *a: local(*a, use_running_average=True)[0], n, (P(), P(), P(), P(AXIS)), P(AXIS))
        y, vjp = jax.vjp(lambda x, p: f(hp, p, stats, x), x, params)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp

    fns = {"params0": params0, "stats0": stats0, "train": Jit(train, f"flax.nnx.sync{n}.train"),
           "infer": Jit(infer, f"flax.nnx.sync{n}.infer")}
    _CACHE[key] = fns
    return fns


class NnxSync(_FlaxSync, Nnx):
    """flax.nnx.BatchNorm(axis_name=AXIS) under jax.shard_map; unequal shards padded and masked."""
    name = "flax.nnx.sync"
    sibling = "flax.nnx.jit"

    def __init__(self, fast_variance: bool = True):
        super().__init__(jit=True, fast_variance=fast_variance)

    def ops(self, pb: Problem) -> Ops:
        from flax import nnx
        fns = _nnx_fns(_cfg(pb, self.fast_variance), pb.channels, len(pb.replicas), not R.equal(pb))
        params = nnx.State(dict(fns["params0"]))
        if pb.affine:
            params = jax.tree.map(lambda v: v, params)
            params["scale"] = params["scale"].replace(to_j(pb.gamma, pb.param_dtype))
            params["bias"] = params["bias"].replace(to_j(pb.beta, pb.param_dtype))

        def given(mean, var):
            s = jax.tree.map(lambda v: v, fns["stats0"])
            s["mean"] = s["mean"].replace(jnp.asarray(mean, s["mean"].value.dtype))
            s["var"] = s["var"].replace(jnp.asarray(var, s["var"].value.dtype))
            return s

        def grads(dp):
            return (dp["scale"].value, dp["bias"].value) if pb.affine else (None, None)

        return self._ops(pb, fns, params, lambda: fns["stats0"], given, grads,
                         lambda s: (s["mean"].value, s["var"].value))


# ----------------------------------------------------------------------------------- Haiku --

_NO_MASK = ("shard_map and pmap give every device the same number of rows, and {api} has no mask to leave "
            "padding rows out of the statistics ({sig}): padding would put zero rows into the pooled mean and "
            "variance, which no user would knowingly do, so unequal shards cannot be expressed")


def _haiku_fns(cfg, n: int):
    key = ("haiku", cfg, n)
    if key in _CACHE:
        return _CACHE[key]
    import haiku as hk
    import jmp
    from jax.sharding import PartitionSpec as P
    dtype, ndim, axis, aff = cfg

    def fwd(x, is_training, test_local_stats, d, eps):
        if dtype in ("float16", "bfloat16"):
            policy = jmp.get_policy(f"params=float32,compute=float32,output={dtype}")
            hk.mixed_precision.set_policy(hk.BatchNorm, policy)
        else:
            hk.mixed_precision.clear_policy(hk.BatchNorm)
        bn = hk.BatchNorm(create_scale=aff, create_offset=aff, decay_rate=d, eps=eps, cross_replica_axis=AXIS,
                          data_format="channels_first" if axis == 1 and ndim > 2 else "channels_last")
        return bn(x, is_training=is_training, test_local_stats=test_local_stats)

    t = hk.transform_with_state(fwd)

    def init(hp, x):  # inside the map: cross_replica_axis must be bound ("unbound axis name" otherwise)
        f = _smap(lambda hp, x: _lead(t.init(jax.random.key(0), x, True, False, *hp)), n, (P(), P(AXIS)),
                  P(AXIS))
        return f(hp, x)

    def local_train(hp, params, state, x):
        y, new = t.apply(params, state, None, x, True, False, *hp)
        return y, _lead(new)

    def train(hp, params, state, x, dy):
        f = _smap(local_train, n, (P(), P(), P(), P(AXIS)), (P(AXIS), P(AXIS)))
        y, vjp, new = jax.vjp(lambda x, p: f(hp, p, state, x), x, params, has_aux=True)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp, new

    def infer(hp, params, state, x, dy, local=False):
        f = _smap(lambda hp, p, s, x: t.apply(p, s, None, x, False, local, *hp)[0], n,
                  (P(), P(), P(), P(AXIS)), P(AXIS))
        y, vjp = jax.vjp(lambda x, p: f(hp, p, state, x), x, params)
        dx, dp = vjp(dy.astype(y.dtype))
        return y, dx, dp

    fns = {"init": Jit(init, f"haiku.sync{n}.init"), "train": Jit(train, f"haiku.sync{n}.train"),
           "infer": Jit(infer, f"haiku.sync{n}.infer"),
           "infer_local": Jit(lambda *a: infer(*a, local=True), f"haiku.sync{n}.infer_local")}
    _CACHE[key] = fns
    return fns


class HaikuSync(_Sync, Haiku):
    """hk.BatchNorm(cross_replica_axis=AXIS) under jax.shard_map (equal shards only)."""
    name = "haiku.sync"
    sibling = "haiku.jit"
    api = "hk.BatchNorm(cross_replica_axis=...) under jax.shard_map"
    unequal_reason = _NO_MASK.format(api="hk.BatchNorm", sig="haiku/_src/batch_norm.py BatchNorm.__call__(inputs, "
                                     "is_training, test_local_stats=False, scale=None, offset=None)")

    def __init__(self):
        super().__init__(jit=True)

    def ops(self, pb: Problem) -> Ops:
        cfg = (pb.dtype, len(pb.shape), pb.axis, pb.affine)
        n = len(pb.replicas)
        f = _haiku_fns(cfg, n)
        hp = (1.0 - pb.momentum, float(pb.eps))
        ikey = ("haiku-init", cfg, n, pb.shape)
        if ikey not in _CACHE:
            _CACHE[ikey] = _replica0(f["init"](hp, to_j(pb.x[0], pb.dtype)), "initial state")
        params, state0 = _CACHE[ikey]
        return self._ops(pb, f, hp, params, state0, lambda new: _replica0(new, "running statistics"))


# --------------------------------------------------------------------------------- Equinox --

def _eqx_fns(cfg, n: int):
    key = ("equinox", cfg, n)
    if key in _CACHE:
        return _CACHE[key]
    import copy

    import equinox as eqx
    from jax.sharding import PartitionSpec as P
    mode, pdt, C, aff = cfg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bn = eqx.nn.BatchNorm(C, axis_name=("batch", AXIS), eps=1e-5, channelwise_affine=aff, momentum=0.99,
                              dtype=jnp.dtype(pdt), mode=mode)
    state0 = eqx.nn.State(bn)

    def fresh():
        leaves, tree = jax.tree_util.tree_flatten(state0)
        return jax.tree_util.tree_unflatten(tree, leaves)

    def layer(hp, wb):
        m = copy.copy(bn)
        object.__setattr__(m, "momentum", hp[0])
        object.__setattr__(m, "eps", hp[1])
        return eqx.tree_at(lambda m: (m.weight, m.bias), m, wb) if aff else m

    def local(hp, wb, state, x, inference):
        y, new = jax.vmap(lambda x, s: layer(hp, wb)(x, s, inference=inference), axis_name="batch",
                          in_axes=(0, None), out_axes=(0, None))(x, state)
        return y, _lead(new)

    # check_vma=False: with the default check_vma=True a collective over the vmap axis inside shard_map
    # raises (jax 0.10.2, jax/_src/lax/parallel.py: "psum can only accept axis_name which corresponds to one
    # of varying ... state of the input"), measured with eqx.nn.BatchNorm and with a bare lax.pmean
    def train(hp, wb, state, x, dy):
        f = _smap(lambda hp, wb, s, x: local(hp, wb, s, x, False), n, (P(), P(), P(), P(AXIS)),
                  (P(AXIS), P(AXIS)), check_vma=False)
        y, vjp, new = jax.vjp(lambda x, wb: f(hp, wb, state, x), x, wb, has_aux=True)
        dx, dwb = vjp(dy.astype(y.dtype))
        return y, dx, dwb, new

    def infer(hp, wb, state, x, dy):
        f = _smap(lambda hp, wb, s, x: local(hp, wb, s, x, True)[0], n, (P(), P(), P(), P(AXIS)), P(AXIS),
                  check_vma=False)
        y, vjp = jax.vjp(lambda x, wb: f(hp, wb, state, x), x, wb)
        dx, dwb = vjp(dy.astype(y.dtype))
        return y, dx, dwb

    def stats(d, state):
        counter = state.get(bn.batch_counter)
        hm, hv = state.get(bn.batch_state_index)
        scale = jnp.where(counter == 0, 1, 1 - d ** counter)   # BatchNorm.__call__, inference branch
        return hm / scale, hv / scale

    def given(rm, rv):
        s = fresh().set(bn.batch_state_index, (rm, rv))
        return s.set(bn.batch_counter, jnp.array(2 ** 30))

    fns = {"fresh": fresh, "train": Jit(train, f"equinox.sync{n}.train"), "infer": Jit(infer, f"equinox.sync{n}.infer"),
           "stats": stats, "given": given}
    _CACHE[key] = fns
    return fns


class EquinoxSync(_Sync, Equinox):
    """eqx.nn.BatchNorm(axis_name=("batch", AXIS), mode="batch") vmapped over the examples of
    each device's shard, under jax.shard_map(check_vma=False) (equal shards only)."""
    sibling = "equinox.batch.jit"
    api = 'eqx.nn.BatchNorm(axis_name=("batch", <device axis>)) under jax.shard_map'
    unequal_reason = _NO_MASK.format(api="eqx.nn.BatchNorm", sig="equinox/nn/_batch_norm.py BatchNorm.__call__(x, "
                                     "state, *, key=None, inference=None)")

    def __init__(self):
        super().__init__(mode="batch", jit=True)
        self.name = "equinox.batch.sync"

    def ops(self, pb: Problem) -> Ops:
        f = _eqx_fns((self.mode, pb.param_dtype, pb.channels, pb.affine), len(pb.replicas))
        return self._ops(pb, f, lambda new: _replica0(new, "running statistics"))

