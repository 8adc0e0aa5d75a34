"""Flax NNX BatchNorm(axis_name=...) across 2 host-CPU devices via jax.shard_map and jax.pmap.
Run: XLA_FLAGS=--xla_force_host_platform_device_count=4 OMP_NUM_THREADS=1 python flax_nnx_sync_bn.py"""
import os, sys
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np
import jax, jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
from flax import nnx
from _ref import make_data, ref_bn, ref_dx, maxerr

EPS, MOM, n, C = 1e-5, 0.9, 4, 3
s0, s1 = make_data((n, n), C, means=(0.0, 5.0))
x = np.concatenate([s0, s1])
y_ref, mu_ref, var_ref, uvar_ref = ref_bn(x, EPS)

model = nnx.BatchNorm(C, momentum=MOM, epsilon=EPS, axis_name="d", use_running_average=False, rngs=nnx.Rngs(0))
graphdef, state = nnx.split(model)
mesh = Mesh(np.array(jax.devices()[:2]), ("d",))

def step(state, xs, mask=None):
    m = nnx.merge(graphdef, state)
    y = m(xs, mask=mask)
    return y, nnx.state(m)

sm = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P("d")), out_specs=(P("d"), P())))
y, new_state = sm(state, x)
print("[nnx, shard_map, 2 devices]")
print(" y err vs global NumPy:", maxerr(y, y_ref))
print(" running mean err     :", maxerr(new_state["mean"][...], (1 - MOM) * mu_ref))
print(" running var err (biased)  :", maxerr(new_state["var"][...], MOM + (1 - MOM) * var_ref))
print(" running var err (unbiased):", maxerr(new_state["var"][...], MOM + (1 - MOM) * uvar_ref))
w = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
dx = jax.grad(lambda xx: jnp.sum(sm(state, xx)[0] * w))(x)
print(" dx err vs global-BN grad:", maxerr(dx, ref_dx(x, w, EPS)))

yp, sp = jax.pmap(step, axis_name="d", in_axes=(None, 0))(state, x.reshape(2, n, C))
print("[nnx, pmap] y err:", maxerr(np.asarray(yp).reshape(-1, C), y_ref),
      " ra_var err:", maxerr(sp["var"][...][0], MOM + (1 - MOM) * var_ref))

# mask with unequal valid counts (1 row on shard 0, 4 rows on shard 1)
mask = np.zeros((2 * n, 1), bool); mask[0] = True; mask[n:] = True
smm = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P("d"), P("d")), out_specs=(P("d"), P())))
_, sm_state = smm(state, x, mask)
_, mu_pool, _, _ = ref_bn(x, EPS, rows=mask[:, 0])
print("[nnx mask] batch mean:", np.asarray(sm_state["mean"][...]) / (1 - MOM),
      " count-weighted:", mu_pool, " unweighted:", (s0[:1].mean(0) + s1.mean(0)) / 2)
# float 0/1 mask: nnx does not cast to bool (nnx/nn/normalization.py:102), linen does (linen/normalization.py:121)
try:
    _, s_f = smm(state, x, mask.astype(np.float32))
    print("[nnx float mask] ran; batch mean:", np.asarray(s_f["mean"][...]) / (1 - MOM))
except Exception as e:
    print("[nnx float mask] ->", type(e).__name__, str(e).splitlines()[0][:200])
