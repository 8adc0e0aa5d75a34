"""d/dv [g * rsqrt(v)] at the variance of 'huge' data, per implementation of the rsqrt derivative.

f32: huge spread S = 2^56 -> v ~ 2^112, rsqrt(v) = 2^-56, rsqrt(v)^3 = 2^-168 (< 2^-149: 0 in f32)
f64: S = 2^480 -> v ~ 2^960, rsqrt(v)^3 = 2^-1440 (< 2^-1074: 0 in f64)
The true derivative g * (-1/2) v^(-3/2) times g = sum(dy * (x - mean)) ~ n * S stays representable.
usage: python rsqrt_grad_underflow.py [tf|jax|torch]...   (default: all)
"""
import sys
import numpy as np

which = sys.argv[1:] or ["tf", "jax", "torch"]
CASES = {"float32": (2.0 ** 112, 40 * 2.0 ** 56), "float64": (2.0 ** 960, 40 * 2.0 ** 480)}


def exact(v, g):
    """-g/2 * v^(-3/2), v a power of two: exact via exponents (no overflow/underflow on the way)."""
    import math
    m, e = math.frexp(v)          # v = 2^(e-1) for a power of two
    return -0.5 * math.ldexp(g, -3 * (e - 1) // 2)


if "tf" in which:
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    def grad(v, g):
        with tf.GradientTape() as t:
            t.watch(v)
            y = tf.math.rsqrt(v)
        return t.gradient(y, v, output_gradients=g)

    xla = tf.function(grad, jit_compile=True)
    for dt, (v, g) in CASES.items():
        vt, gt = tf.constant(v, getattr(tf, dt)), tf.constant(g, getattr(tf, dt))
        print(f"tf {tf.__version__} {dt}: eager RsqrtGrad {float(grad(vt, gt).numpy())!r:>12}   "
              f"XLA RsqrtGrad {float(xla(vt, gt).numpy())!r:>12}   true {exact(v, g):.6g}")
if "jax" in which:
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    for dt, (v, g) in CASES.items():
        f = lambda v: jax.lax.rsqrt(v)
        _, vjp = jax.vjp(f, jnp.asarray(v, dt))
        print(f"jax {jax.__version__} {dt}: rsqrt vjp {float(vjp(jnp.asarray(g, dt))[0])!r:>12}   true {exact(v, g):.6g}")
if "torch" in which:
    import torch
    for dt, (v, g) in CASES.items():
        vt = torch.tensor(v, dtype=getattr(torch, dt), requires_grad=True)
        y = vt.add(1e-5).rsqrt_() if False else torch.rsqrt(vt)
        y.backward(torch.tensor(g, dtype=getattr(torch, dt)))
        print(f"torch {torch.__version__} {dt}: rsqrt backward {float(vt.grad)!r:>12}   true {exact(v, g):.6g}")
