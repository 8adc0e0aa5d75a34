"""Batch variance of data with spread 2^70 in float32 (the suite's "overflow" distribution): every value
and the normalised output are finite, the exact variance is ~2^140 (> float32 max 2^128).
usage: python overflow_variance.py [tf|jax|torch]"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
x = (np.array([1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 0.25, -0.25]) * 2.0 ** 70 + 3.0 * 2.0 ** 70).astype(np.float32)
exact = float(np.var(x.astype(np.float64)))
print(f"x spread 2^70, exact variance {exact:.4g} (float32 max 3.4e38); exact x_hat[0] "
      f"{(float(x[0]) - float(np.mean(x.astype(np.float64)))) / np.sqrt(exact):.4f}")
which = sys.argv[1] if len(sys.argv) > 1 else "tf"
if which == "tf":
    import tensorflow as tf
    xt = tf.constant(x)
    m, v = tf.nn.moments(xt, [0])
    y = tf.nn.batch_normalization(xt, m, v, tf.constant(0.5), tf.constant(1.0), 1e-5)
    print(f"tf.nn.moments: variance {float(v)}; tf.nn.batch_normalization y[0] {float(y[0])} (beta 0.5)")
    x4 = tf.reshape(xt, [8, 1, 1, 1])
    r = tf.raw_ops.FusedBatchNormV3(x=x4, scale=tf.ones([1]), offset=tf.fill([1], 0.5), mean=tf.constant([], tf.float32),
                                    variance=tf.constant([], tf.float32), epsilon=1e-5, exponential_avg_factor=1.0,
                                    data_format="NHWC", is_training=True)
    print(f"FusedBatchNormV3: batch variance {float(r[4][0])}; y[0] {float(r[0][0, 0, 0, 0])}")
elif which == "jax":
    import jax.numpy as jnp
    print(f"jnp.var (Keras 3 jax moments): {float(jnp.var(jnp.asarray(x)))}")
else:
    import torch
    t = torch.tensor(x)
    print(f"torch one-pass mean(x^2) - mean(x)^2 (Keras 3 torch moments): {float(torch.mean(t * t) - torch.mean(t) ** 2)}")
