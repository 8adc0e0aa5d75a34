"""flax.linen (dtype=<16-bit>, param_dtype=float32) dx for 16-bit inputs.

_compute_stats upcasts x (`x = x.astype(dtype)`, flax/linen/normalization.py:113-114) and
_normalize uses the 16-bit x directly (`y = x - mean`, :205, an implicit promotion): two
convert_element_type ops from the 16-bit x. The transpose of each convert rounds its
cotangent to the 16-bit dtype, and the two rounded cotangents (direct path ~ gamma/sigma*dy,
statistics path ~ -gamma/sigma*(mean(dy) + x_hat*mean(dy*x_hat))) are added in 16-bit: dx
carries ~u16*(|direct| + |stats|) where the reference allows ~2*u16*|dx| (tolerance.py
section 5), i.e. it fails where the two paths cancel. Prints the error in units of the
16-bit ulp of dx for: linen as is, linen fed float32 (x cast once by the caller), and the
f32-exact dx rounded once.
"""
import sys
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
from flax import nnx

def ref_dx(x, dy, g, eps):
    x = x.astype(np.float64); dy = dy.astype(np.float64)
    m = x.mean(0); v = x.var(0); s = np.sqrt(v + eps); xh = (x - m) / s
    return g / s * (dy - dy.mean(0) - xh * (dy * xh).mean(0)), g / s * dy, g / s * (dy.mean(0) + xh * (dy * xh).mean(0))

rng = np.random.default_rng(1)
n, C, eps = 40, 3, 1e-5
for dtn in ("bfloat16", "float16"):
    dt = jnp.bfloat16 if dtn == "bfloat16" else jnp.float16
    u = 2.0 ** -8 if dtn == "bfloat16" else 2.0 ** -11
    x = jnp.asarray(rng.normal(0.5, 1.5, (n, C)), dt); dy = jnp.asarray(rng.normal(size=(n, C)), dt)
    g = np.array([0.7, 1.3, -1.1])
    xn, dyn = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    ref, direct, stats = ref_dx(xn, dyn, g, eps)
    res = {}
    for fast in (True, False):
        bn = nn.BatchNorm(momentum=0.9, epsilon=eps, dtype=dt, param_dtype=jnp.float32, use_fast_variance=fast)
        p = {"params": {"scale": jnp.asarray(g, jnp.float32), "bias": jnp.zeros(C, jnp.float32)},
             "batch_stats": {"mean": jnp.zeros(C, jnp.float32), "var": jnp.ones(C, jnp.float32)}}
        f = lambda x: bn.apply(p, x, use_running_average=False, mutable=["batch_stats"])[0]
        y, vjp = jax.vjp(jax.jit(f), x)
        res[f"linen fast={fast}"] = np.asarray(vjp(dy.astype(y.dtype))[0], np.float64)
        # the same module fed float32 (x converted once, by the caller)
        y32, vjp32 = jax.vjp(jax.jit(f), x.astype(jnp.float32))
        res[f"linen f32-in fast={fast}"] = np.asarray(vjp32(dy.astype(y32.dtype))[0].astype(dt), np.float64)
    m = nnx.BatchNorm(C, momentum=0.9, epsilon=eps, dtype=dt, param_dtype=jnp.float32, rngs=nnx.Rngs(0))
    m.scale[...] = jnp.asarray(g, jnp.float32)
    gd, st = nnx.split(m)
    def fn(x, st):
        mm = nnx.merge(gd, st); return mm(x, use_running_average=False)
    y, vjp = jax.vjp(jax.jit(fn), x, st)
    res["nnx"] = np.asarray(vjp(dy.astype(y.dtype))[0], np.float64)
    res["f64 dx rounded once"] = np.asarray(jnp.asarray(ref, dt), np.float64)
    ulp = u * np.maximum(np.abs(ref), 1e-30)
    print(f"{dtn}: mean |direct|/|dx| = {np.mean(np.abs(direct)) / np.mean(np.abs(ref)):.2f}, "
          f"mean |stats path|/|dx| = {np.mean(np.abs(stats)) / np.mean(np.abs(ref)):.2f}")
    for k, d in res.items():
        err = np.abs(d - ref)
        # the suite's dx tolerance for 16-bit: ~2 u |dx| (+ tiny f32 statistics terms)
        print(f"   {k:22s} max err / (2 u |dx|) = {np.max(err / (2 * ulp)):.3g}   "
              f"max err / (u (|direct|+|stats|)) = {np.max(err / (u * (np.abs(direct) + np.abs(stats)))):.3g}")
    if dtn == "bfloat16" and len(sys.argv) > 1:
        bn = nn.BatchNorm(momentum=0.9, epsilon=eps, dtype=dt, param_dtype=jnp.float32)
        p = {"params": {"scale": jnp.asarray(g, jnp.float32), "bias": jnp.zeros(C, jnp.float32)},
             "batch_stats": {"mean": jnp.zeros(C, jnp.float32), "var": jnp.ones(C, jnp.float32)}}
        f = lambda x, dy: jax.vjp(lambda x: bn.apply(p, x, use_running_average=False, mutable=["batch_stats"])[0], x)[1](dy)
        print(jax.make_jaxpr(f)(x, dy.astype(jnp.bfloat16)))
