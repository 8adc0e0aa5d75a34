"""Flax with float64 data (x64 on, param_dtype=float64): where do the running statistics
lose float64 precision?

linen: batch_stats are created float32 (ones for var) regardless of param_dtype
(flax/linen/normalization.py:358-374, force_float32_reductions=True); the first update
`self.momentum * ra_var.value + (1 - self.momentum) * var` (:404) multiplies a Python-float
momentum (weakly typed) by a float32 array -> float32 product fl32(d) * 1, then promotes to
float64. The value stays float64 afterwards, so the error is (d - fl32(d)) * d**(k-1),
absolute, in running_var only (running_mean starts at 0: d * 0 = 0 exactly).

nnx: BatchStat variables are created float32 (flax/nnx/nn/normalization.py:312-313) and
updated in place with `self.mean[...] = ...` (:404-409), which keeps float32: both running
statistics are float32 roundings at every step.
"""
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
from flax import nnx

rng = np.random.default_rng(0)
x = jnp.asarray(rng.normal(0.3, 1.2, (16, 5)), jnp.float64)
bmean = np.asarray(x).mean(0); bvar = np.asarray(x).var(0)

for f in (0.1, 0.01, 0.5, 1.0, 0.3):
    d = 1.0 - f
    bn = nn.BatchNorm(momentum=d, epsilon=1e-5, param_dtype=jnp.float64)
    v = bn.init(jax.random.key(0), x, use_running_average=False)
    st = v["batch_stats"]
    _, upd = bn.apply({"params": v["params"], "batch_stats": st}, x, use_running_average=False, mutable=["batch_stats"])
    rv = np.asarray(upd["batch_stats"]["var"]); rm = np.asarray(upd["batch_stats"]["mean"])
    exact_rv = d * 1.0 + f * bvar
    st64 = jax.tree.map(lambda a: a.astype(jnp.float64), st)
    _, upd64 = bn.apply({"params": v["params"], "batch_stats": st64}, x, use_running_average=False, mutable=["batch_stats"])
    rv64 = np.asarray(upd64["batch_stats"]["var"])
    print(f"linen f={f}: init dtype {st['var'].dtype}, after step {upd['batch_stats']['var'].dtype}; "
          f"max|running_var - exact| = {np.abs(rv - exact_rv).max():.3g} (d - fl32(d) = {d - float(np.float32(d)):.3g}); "
          f"max|running_mean - exact| = {np.abs(rm - f * bmean).max():.3g}; "
          f"with float64 initial batch_stats: {np.abs(rv64 - exact_rv).max():.3g}")
    # two steps: the error decays by d
    _, upd2 = bn.apply({"params": v["params"], "batch_stats": upd["batch_stats"]}, x, use_running_average=False, mutable=["batch_stats"])
    exact2 = d * exact_rv + f * bvar
    print(f"   step 2: max|err| = {np.abs(np.asarray(upd2['batch_stats']['var']) - exact2).max():.3g} "
          f"(predicted d*(d - fl32(d)) = {d * (d - float(np.float32(d))):.3g})")

for f in (0.1, 0.5):
    d = 1.0 - f
    m = nnx.BatchNorm(5, momentum=d, epsilon=1e-5, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    m(x, use_running_average=False)
    rm, rv = np.asarray(m.mean[...]), np.asarray(m.var[...])
    print(f"nnx f={f}: mean dtype {m.mean[...].dtype}, var dtype {m.var[...].dtype}; "
          f"max|rm - exact| = {np.abs(rm - f * bmean).max():.3g}, max|rv - exact| = {np.abs(rv - (d + f * bvar)).max():.3g}; "
          f"= float32 rounding of the exact value: {np.array_equal(rm, np.float32(f * bmean).astype(np.float64))}")
    # given float64 statistics are stored float32 too
    m.mean[...] = jnp.asarray(bmean, jnp.float64)
    print(f"   after m.mean[...] = float64 array: dtype {m.mean[...].dtype}")
