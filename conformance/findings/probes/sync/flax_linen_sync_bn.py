"""Flax linen BatchNorm(axis_name=...) across 2 (and 4) host-CPU devices.
Run: XLA_FLAGS=--xla_force_host_platform_device_count=4 OMP_NUM_THREADS=1 python flax_linen_sync_bn.py"""
import os, sys
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")  # before importing jax
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np
import jax, jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
import flax, flax.linen as nn
from _ref import make_data, ref_bn, ref_dx, ref_dx_local, ref_dx_sync_fwd_local_bwd, maxerr

print("jax", jax.__version__, "flax", flax.__version__, jax.devices())
EPS, MOM, n, C = 1e-5, 0.9, 4, 3
s0, s1 = make_data((n, n), C, means=(0.0, 5.0))
x = np.concatenate([s0, s1])            # global batch (8, C); shard d gets rows [4d, 4d+4)
y_ref, mu_ref, var_ref, uvar_ref = ref_bn(x, EPS)

bn = nn.BatchNorm(use_running_average=False, momentum=MOM, epsilon=EPS, axis_name="d")
variables = bn.init(jax.random.key(0), x[:n])  # init ignores axis_name (normalization.py:393)
mesh = Mesh(np.array(jax.devices()[:2]), ("d",))

def step(variables, xs, mask=None):
    y, upd = bn.apply(variables, xs, mask=mask, mutable=["batch_stats"])
    return y, upd["batch_stats"]

# ---- 1. shard_map over 2 devices -------------------------------------------------
sm = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P("d")), out_specs=(P("d"), P())))
y, bs = sm(variables, x)
print("\n[shard_map, 2 devices]")
print(" y err vs global NumPy          :", maxerr(y, y_ref))
print(" y err vs per-shard (local) BN   :", maxerr(y, np.concatenate([ref_bn(s0, EPS)[0], ref_bn(s1, EPS)[0]])))
print(" ra_mean", np.asarray(bs["mean"]), "expected", (1 - MOM) * mu_ref)
print(" ra_var ", np.asarray(bs["var"]))
print("   expected biased   0.9+0.1*var_N  :", MOM + (1 - MOM) * var_ref)
print("   (unbiased would be 0.9+0.1*var_N-1:", MOM + (1 - MOM) * uvar_ref, ")")

# gradient of a global loss taken OUTSIDE shard_map
w = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
loss = lambda xx: jnp.sum(sm(variables, xx)[0] * w)
dx = jax.grad(loss)(x)
print(" dx err vs global-BN grad        :", maxerr(dx, ref_dx(x, w, EPS)))
print(" dx err vs local-BN grad         :", maxerr(dx, ref_dx_local([s0, s1], [w[:n], w[n:]], EPS)))
print(" dx err vs sync-fwd/local-bwd    :", maxerr(dx, ref_dx_sync_fwd_local_bwd([s0, s1], [w[:n], w[n:]], EPS)))

# ---- 2. pmap (legacy API) ----------------------------------------------------------
pm = jax.pmap(step, axis_name="d", in_axes=(None, 0))
yp, bsp = pm(variables, x.reshape(2, n, C))
print("\n[pmap, 2 devices]  y err:", maxerr(np.asarray(yp).reshape(-1, C), y_ref),
      " ra_mean err:", maxerr(bsp["mean"][0], (1 - MOM) * mu_ref),
      " ra_var err:", maxerr(bsp["var"][0], MOM + (1 - MOM) * var_ref))
# grad INSIDE pmap of the per-device loss (JAX convention: pmean transposes to pmean)
def local_loss_grad(variables, xs, ws):
    return jax.grad(lambda xx: jnp.sum(step(variables, xx)[0] * ws))(xs)
dxp = jax.pmap(local_loss_grad, axis_name="d", in_axes=(None, 0, 0))(variables, x.reshape(2, n, C), w.reshape(2, n, C))
print(" grad-inside-pmap dx err vs global-BN grad:", maxerr(np.asarray(dxp).reshape(-1, C), ref_dx(x, w, EPS)))

# ---- 3. use_fast_variance=False (two-pass: pmean of mean((x-mu_global)^2)) ---------
bn2 = nn.BatchNorm(use_running_average=False, momentum=MOM, epsilon=EPS, axis_name="d", use_fast_variance=False)
sm2 = jax.jit(jax.shard_map(lambda v, xs: bn2.apply(v, xs, mutable=["batch_stats"]),
                            mesh=mesh, in_specs=(P(), P("d")), out_specs=(P("d"), P())))
y2, _ = sm2(variables, x)
print("\n[use_fast_variance=False] y err:", maxerr(y2, y_ref))

# ---- 4. mask=: unequal numbers of valid rows per shard -----------------------------
# shard0: only row 0 valid (1 row), shard1: all 4 rows valid -> 5 valid rows in total
mask = np.zeros((2 * n, 1), bool); mask[0] = True; mask[n:] = True
smm = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P("d"), P("d")), out_specs=(P("d"), P())))
ym, bsm = smm(variables, x, mask)
_, mu_pool, var_pool, _ = ref_bn(x, EPS, rows=mask[:, 0])
m0, m1 = s0[:1].astype(np.float64).mean(0), s1.astype(np.float64).mean(0)
q0, q1 = (s0[:1].astype(np.float64) ** 2).mean(0), (s1.astype(np.float64) ** 2).mean(0)
mu_unw = (m0 + m1) / 2; var_unw = (q0 + q1) / 2 - mu_unw ** 2
print("\n[mask: shard0 1 valid row, shard1 4 valid rows]")
print(" batch mean (from ra_mean/0.1) :", np.asarray(bsm["mean"]) / (1 - MOM))
print(" count-weighted pooled mean    :", mu_pool)
print(" unweighted mean of shard means:", mu_unw)
print(" batch var (from ra_var)       :", (np.asarray(bsm["var"]) - MOM) / (1 - MOM))
print(" count-weighted pooled var     :", var_pool)
print(" unweighted E[x^2]-E[x]^2      :", var_unw)
# same mask on ONE device (no axis_name) for comparison: correct count weighting
bn1 = nn.BatchNorm(use_running_average=False, momentum=MOM, epsilon=EPS)
_, bs1 = bn1.apply(variables, x, mask=mask, mutable=["batch_stats"])
print(" single-device masked mean     :", np.asarray(bs1["batch_stats"]["mean"]) / (1 - MOM))
# fully masked shard -> NaN everywhere
mask2 = np.zeros((2 * n, 1), bool); mask2[n:] = True
ym2, bsm2 = smm(variables, x, mask2)
print(" shard0 fully masked -> any NaN in y of shard1?", bool(np.isnan(np.asarray(ym2)[n:]).any()),
      " ra_mean:", np.asarray(bsm2["mean"]))

# ---- 5. axis_index_groups ------------------------------------------------------------
x4 = np.concatenate(make_data((n,) * 4, C, means=(0.0, 5.0, -3.0, 10.0), seed=2))
mesh4 = Mesh(np.array(jax.devices()), ("d",))
y4, bs4 = jax.jit(jax.shard_map(step, mesh=mesh4, in_specs=(P(), P("d")), out_specs=(P("d"), P())))(variables, x4)
print("\n[shard_map, 4 devices, shard means 0/5/-3/10] y err:", maxerr(y4, ref_bn(x4, EPS)[0]),
      " ra_var err:", maxerr(bs4["var"], MOM + (1 - MOM) * ref_bn(x4, EPS)[2]))
bng = nn.BatchNorm(use_running_average=False, momentum=MOM, epsilon=EPS, axis_name="d",
                   axis_index_groups=[[0, 1], [2, 3]])
stepg = lambda v, xs: bng.apply(v, xs, mutable=["batch_stats"])
yg, bsg = jax.pmap(stepg, axis_name="d", in_axes=(None, 0))(variables, x4.reshape(4, n, C))
yg = np.asarray(yg).reshape(-1, C)
print("\n[axis_index_groups=[[0,1],[2,3]] under pmap, 4 devices]")
print(" y[dev0,1] err vs BN(rows of dev0+1):", maxerr(yg[:2 * n], ref_bn(x4[:2 * n], EPS)[0]))
print(" y[dev2,3] err vs BN(rows of dev2+3):", maxerr(yg[2 * n:], ref_bn(x4[2 * n:], EPS)[0]))
print(" per-device ra_mean:\n", np.asarray(bsg["batch_stats"]["mean"]) / (1 - MOM), "\n expected grp means", x4[:2*n].mean(0), x4[2*n:].mean(0))
for cv in (True, False):
    try:
        ys, _ = jax.jit(jax.shard_map(stepg, mesh=mesh4, in_specs=(P(), P("d")), out_specs=(P("d"), P("d")),
                                      check_vma=cv))(variables, x4)
        ys = np.asarray(ys)
        print(f" shard_map(check_vma={cv}) + axis_index_groups: ran; err grp0",
              maxerr(ys[:2 * n], ref_bn(x4[:2 * n], EPS)[0]), "grp1", maxerr(ys[2 * n:], ref_bn(x4[2 * n:], EPS)[0]))
    except NotImplementedError as e:
        print(f" shard_map(check_vma={cv}) + axis_index_groups -> NotImplementedError{e.args}"
              " (jax/_src/lax/parallel.py:2377-2379 bind_psum_invariant)")
