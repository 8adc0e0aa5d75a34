"""The JVP of lax.rsqrt is g * (-0.5) * (ans / x) (jax/_src/lax/lax.py:4726-4729): ans / x =
v**-1.5 underflows to 0 once v**1.5 exceeds the dtype's range (float32: v > ~2**84, i.e.
sigma > 2**42; float64: sigma > 2**341), although the true cotangent of the variance,
sum(dy * gamma * (x - mu)) * (-0.5) * v**-1.5, is representable because sum(dy*(x-mu)) is
huge. The variance term of dx (x_hat * mean(dy * x_hat)) is then lost: dx = gamma/sigma *
(dy - mean(dy)) only. Flax (linen, nnx, one- or two-pass: _normalize uses lax.rsqrt) and
Haiku (batch_norm.py:204 `jax.lax.rsqrt(var + eps)`) both hit it; Equinox divides by
jnp.sqrt (sqrt's JVP is g * 0.5 / ans, no v**-1.5 intermediate) and does not.
"""
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import flax.linen as nn

rng = np.random.default_rng(0)
for dt, S in ((jnp.float32, 2.0 ** 56), (jnp.float64, 2.0 ** 480), (jnp.float32, 2.0 ** 40), (jnp.float32, 2.0 ** 44)):
    v = jnp.asarray(S * S, dt)
    g_rsqrt = jax.grad(lambda v: jax.lax.rsqrt(v))(v)
    g_sqrt = jax.grad(lambda v: 1.0 / jnp.sqrt(v))(v)
    z = rng.normal(size=(16, 1))
    x = jnp.asarray(S * (1.0 + z), dt)
    dy = jnp.asarray(rng.normal(size=(16, 1)), dt)
    xh = (np.asarray(x, np.float64) - np.asarray(x, np.float64).mean()) / np.asarray(x, np.float64).std()
    sig = np.asarray(x, np.float64).std()
    dyn = np.asarray(dy, np.float64)
    dx_ref = (dyn - dyn.mean() - xh * (dyn * xh).mean()) / sig
    dx_novar = (dyn - dyn.mean()) / sig
    out = {}
    for name, fast in (("flax one-pass", True), ("flax two-pass", False)):
        bn = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5, use_fast_variance=fast,
                          param_dtype=dt, use_bias=False, use_scale=False)
        vars0 = bn.init(jax.random.key(0), x)
        f = lambda x: bn.apply(vars0, x, mutable=["batch_stats"])[0]
        _, vjp = jax.vjp(f, x)
        out[name] = np.asarray(vjp(dy)[0], np.float64)
    def eqx_like(x):
        m = x.mean(0); v = ((x - m) ** 2).mean(0)
        return (x - m) / jnp.sqrt(v + 1e-5)
    _, vjp = jax.vjp(eqx_like, x)
    out["sqrt+divide"] = np.asarray(vjp(dy)[0], np.float64)
    print(f"{jnp.dtype(dt).name} sigma=2^{np.log2(S):.0f}: d rsqrt(v)/dv = {float(g_rsqrt):.3g}, d (1/sqrt(v))/dv = {float(g_sqrt):.3g}")
    for k, d in out.items():
        rel = np.abs(d - dx_ref).max() / np.abs(dx_ref).max()
        rel_novar = np.abs(d - dx_novar).max() / np.abs(dx_ref).max()
        print(f"   {k:14s} max|dx - ref|/max|ref| = {rel:.3g}; vs dx without the variance term: {rel_novar:.3g}")
