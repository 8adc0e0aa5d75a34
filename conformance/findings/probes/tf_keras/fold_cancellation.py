"""y = x * inv + (offset - mean * inv) (the folded form of tf.nn.batch_normalization, and of Keras 3's jax
backend) against (x - mean) * inv + offset, for a constant channel x = mean = c with zero variance.
Exact answer: offset. usage: python fold_cancellation.py [tf|jax]"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
which = sys.argv[1] if len(sys.argv) > 1 else "tf"
C = {"float32": [1.0, 1e10, 1e20, 1e30, 3e34], "float64": [1.0, 1e100, 1e200, 1e290]}
if which == "tf":
    import tensorflow as tf
    bn = lambda x, m, v, o, s: tf.nn.batch_normalization(x, m, v, o, s, 1e-5)
    xla = tf.function(bn, jit_compile=True)
    for dt, cs in C.items():
        for c in cs:
            x = tf.constant(np.full(8, c), dt); m = tf.constant([c], dt); v = tf.constant([0.0], dt)
            o = tf.constant([0.6], dt); s = tf.constant([1.0], dt)
            print(f"{dt} c={c:8.0e}: tf.nn.batch_normalization eager y={float(bn(x, m, v, o, s)[0])!r:12}  "
                  f"XLA y={float(xla(x, m, v, o, s)[0])!r:12}  (x-mean)*inv+offset={float(((x - m) * tf.math.rsqrt(v + 1e-5) + o)[0])!r}")
else:
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    def keras_jax_bn(x, mean, variance, offset, scale, epsilon=1e-5):   # keras/src/backend/jax/nn.py:1072-1090
        inv = jax.lax.rsqrt(variance + epsilon) * scale
        res = -mean * inv + offset
        return jnp.add(x * inv, res)
    for dt, cs in C.items():
        for c in cs:
            x = jnp.full(8, c, dt); m = jnp.asarray([c], dt); v = jnp.asarray([0.0], dt)
            o = jnp.asarray([0.6], dt); s = jnp.asarray([1.0], dt)
            print(f"{dt} c={c:8.0e}: keras jax batch_normalization y={float(keras_jax_bn(x, m, v, o, s)[0])!r:12} "
                  f"jit y={float(jax.jit(keras_jax_bn)(x, m, v, o, s)[0])!r}")
