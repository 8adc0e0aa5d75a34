"""Equinox eqx.nn.BatchNorm with axis_name=("batch","device"): vmap over examples inside
shard_map/pmap over 2 host-CPU devices.
Run: XLA_FLAGS=--xla_force_host_platform_device_count=4 OMP_NUM_THREADS=1 python equinox_sync_bn.py"""
import os, sys, warnings
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np
import jax, jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
import equinox as eqx
from _ref import make_data, ref_bn, ref_dx, maxerr

EPS, MOM, n, C = 1e-5, 0.9, 4, 3
s0, s1 = make_data((n, n), C, means=(0.0, 5.0))
x = np.concatenate([s0, s1])          # equinox per-example input is (C,) -> batch (N, C)
y_ref, mu_ref, var_ref, uvar_ref = ref_bn(x, EPS)
mesh = Mesh(np.array(jax.devices()[:2]), ("device",))

def run(axis_name, mode="batch", xs=x):
    bn, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(C, axis_name=axis_name, eps=EPS, momentum=MOM, mode=mode)
    def local(xloc, state):   # per-device: vmap over the local examples with axis_name="batch"
        return jax.vmap(bn, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(xloc, state)
    f = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P("device"), P()), out_specs=(P("device"), P()),
                              check_vma=False))  # state is returned replicated (identical on all devices)
    return bn, state, f

# ---- 1. tuple axis_name over vmap axis + device axis --------------------------------
bn, state, f = run(("batch", "device"))
y, st = f(x, state)
hm, hv = st.get(bn.batch_state_index)
print("[eqx mode='batch', axis_name=('batch','device'), shard_map 2 devices]")
print(" y err vs global NumPy:", maxerr(y, y_ref))
print(" hidden_mean err:", maxerr(hm, (1 - MOM) * mu_ref))
print(" hidden_var  err vs biased:", maxerr(hv, MOM + (1 - MOM) * var_ref),
      " vs unbiased:", maxerr(hv, MOM + (1 - MOM) * uvar_ref))
w = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
dx = jax.grad(lambda xx: jnp.sum(f(xx, state)[0] * w))(x)
print(" dx err vs global-BN grad:", maxerr(dx, ref_dx(x, w, EPS)))

# pmap variant
bnp, statep = eqx.nn.make_with_state(eqx.nn.BatchNorm)(C, axis_name=("batch", "device"), eps=EPS, momentum=MOM, mode="batch")
vm = jax.vmap(bnp, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
yp, stp = jax.pmap(vm, axis_name="device", in_axes=(0, None))(x.reshape(2, n, C), statep)
print("[pmap variant] y err:", maxerr(np.asarray(yp).reshape(-1, C), y_ref))

# ---- 2. only axis_name="batch" inside shard_map -> per-device (unsynchronised) stats -----
bnl, statel, fl = run("batch")
yl = jax.jit(jax.shard_map(lambda xl, s: jax.vmap(bnl, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(xl, s)[0],
                          mesh=mesh, in_specs=(P("device"), P()), out_specs=P("device"), check_vma=False))(x, statel)
print("[axis_name='batch' only] y err vs global:", maxerr(yl, y_ref), " vs per-shard BN:",
      maxerr(yl, np.concatenate([ref_bn(s0, EPS)[0], ref_bn(s1, EPS)[0]])))

# ---- 3. inference in mode='batch' after ONE training step (zero-debias of var initialised to 1)
inf_model = eqx.nn.inference_mode(bn)
vmi = jax.vmap(inf_model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
yinf, _ = vmi(x, st)   # inference does no collectives, plain vmap is enough
counter = int(st.get(bn.batch_counter))
used_var = hv / (1 - MOM ** counter)
print("[mode='batch' inference after", counter, "step] var used =", np.asarray(used_var),
      "\n   = hidden_var/(1-m^c) = (m*1 + (1-m)*var)/(1-m) = var + m/(1-m) =", var_ref + MOM / (1 - MOM),
      "\n   batch var was", var_ref)
print("   inference y err vs normalising with batch stats:", maxerr(yinf, y_ref))

# ---- 4. mode='ema': training output uses the EMA-blended stats (after the first step) -----
bne, statee, fe = run(("batch", "device"), mode="ema")
vme = jax.vmap(bne, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
for name, call in [("shard_map", lambda: fe(x, statee)),
                   ("pmap", lambda: jax.pmap(vme, axis_name="device", in_axes=(0, None))(x.reshape(2, n, C), statee))]:
    try:
        call(); print(f"[mode='ema' under {name}] OK")
    except ValueError as e:
        print(f"[mode='ema' under {name}] -> ValueError: {str(e)[:140]}")
# semantics of 'ema' mode on ONE device (plain vmap, axis_name='batch'); the global batch is x
bn1, st1 = eqx.nn.make_with_state(eqx.nn.BatchNorm)(C, axis_name="batch", eps=EPS, momentum=MOM, mode="ema")
v1 = jax.jit(jax.vmap(bn1, axis_name="batch", in_axes=(0, None), out_axes=(0, None)))
ye1, st1 = v1(x, st1)
x2 = np.concatenate(make_data((n, n), C, means=(1.0, -2.0), seed=5))
ye2, st2 = v1(x2, st1)
_, mu2, var2, _ = ref_bn(x2, EPS)
blend_mu = MOM * mu_ref + (1 - MOM) * mu2; blend_var = MOM * var_ref + (1 - MOM) * var2
print("[mode='ema', single device] step1 y err vs batch-stat BN:", maxerr(ye1, y_ref),
      "; step2 y err vs batch-stat BN:", maxerr(ye2, ref_bn(x2, EPS)[0]),
      " vs EMA-blended stats:", maxerr(ye2, (x2 - blend_mu) / np.sqrt(blend_var + EPS)))

# ---- 5. shard_map with the default check_vma=True fails for vmap-axis collectives (JAX 0.10.2)
import traceback
for an in [("batch", "device"), "batch"]:
    b, s = eqx.nn.make_with_state(eqx.nn.BatchNorm)(C, axis_name=an, mode="batch")
    try:
        jax.jit(jax.shard_map(lambda xl, s: jax.vmap(b, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(xl, s)[0],
                              mesh=mesh, in_specs=(P("device"), P()), out_specs=P("device")))(x, s)
        print(f"[check_vma=True, axis_name={an}] OK")
    except Exception as e:
        tb = traceback.extract_tb(e.__traceback__)[-1]
        print(f"[check_vma=True, axis_name={an}] -> {type(e).__name__}: {str(e)[:160]!r}")
