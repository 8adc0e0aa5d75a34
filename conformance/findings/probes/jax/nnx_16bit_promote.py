"""flax.nnx.BatchNorm(dtype=<16-bit>, param_dtype=float32): promote_dtype casts x, the
running mean/var, scale and bias to the 16-bit dtype before normalising
(flax/nnx/nn/normalization.py:385-387 via flax/nnx/nn/dtypes.py:81-82), unlike linen, which
keeps the float32 parameters and statistics (force_float32_reductions, linen
normalization.py:376-386, 209-223). Consequences measured here:
  * dgamma/dbeta: the transpose of the float32 -> 16-bit cast returns the parameter
    gradients rounded to 16 bits (linen: float32);
  * inference: the running statistics are rounded to 16 bits before use.
"""
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
from flax import nnx

rng = np.random.default_rng(3)
C = 3
for dt in (jnp.bfloat16, jnp.float16):
    name = jnp.dtype(dt).name
    x = jnp.asarray(rng.normal(0.3, 1.4, (40, C)), dt)
    dy = jnp.asarray(rng.normal(size=(40, C)), dt)
    g = jnp.asarray([0.7, 1.3, -1.1], jnp.float32); b = jnp.asarray([0.1, -0.2, 0.3], jnp.float32)
    rm = jnp.asarray([0.123456, -1.234567, 2.345678], jnp.float32); rv = jnp.asarray([1.2345678, 0.3456789, 4.5678912], jnp.float32)
    for train in (True, False):
        m = nnx.BatchNorm(C, momentum=0.9, epsilon=1e-5, dtype=dt, param_dtype=jnp.float32, rngs=nnx.Rngs(0))
        m.scale[...] = g; m.bias[...] = b; m.mean[...] = rm; m.var[...] = rv
        gd, params, rest = nnx.split(m, nnx.Param, ...)
        def f(x, p, r):
            mm = nnx.merge(gd, p, r)
            return mm(x, use_running_average=not train)
        y, vjp = jax.vjp(f, x, params, rest)
        dx, dp, _ = vjp(dy.astype(y.dtype))
        dg = np.asarray(dp["scale"][...], np.float64)
        lin = nn.BatchNorm(momentum=0.9, epsilon=1e-5, dtype=dt, param_dtype=jnp.float32)
        vars_ = {"params": {"scale": g, "bias": b}, "batch_stats": {"mean": rm, "var": rv}}
        fl = lambda x, p: lin.apply({"params": p, "batch_stats": vars_["batch_stats"]}, x, use_running_average=not train,
                                    mutable=["batch_stats"])[0]
        yl, vjpl = jax.vjp(fl, x, vars_["params"])
        _, dpl = vjpl(dy.astype(yl.dtype))
        dgl = np.asarray(dpl["scale"], np.float64)
        rep = lambda a: bool(np.all(np.asarray(jnp.asarray(a, dt), np.float64) == a))
        print(f"{name} {'train' if train else 'infer'}: nnx dgamma {dg} (16-bit representable: {rep(dg)}); "
              f"linen dgamma {dgl} (16-bit representable: {rep(dgl)}); rel diff {np.abs(dg - dgl).max() / np.abs(dgl).max():.2g}")
        if not train:
            xn = np.asarray(x, np.float64)
            def ref(rm_, rv_):
                return (xn - rm_) / np.sqrt(rv_ + 1e-5) * np.asarray(g, np.float64) + np.asarray(b, np.float64)
            y64 = ref(np.asarray(rm, np.float64), np.asarray(rv, np.float64))
            y16 = ref(np.asarray(jnp.asarray(rm, dt), np.float64), np.asarray(jnp.asarray(rv, dt), np.float64))
            print(f"   inference y: max|nnx - f32-stats ref| = {np.abs(np.asarray(y, np.float64) - y64).max():.3g}, "
                  f"max|nnx - 16-bit-stats ref| = {np.abs(np.asarray(y, np.float64) - y16).max():.3g}, "
                  f"linen max|y - f32-stats ref| = {np.abs(np.asarray(yl, np.float64) - y64).max():.3g}")
