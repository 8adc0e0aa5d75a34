"""tf_keras: which variance feeds moving_variance, per code path (eager fused kernel, fused under XLA,
non-fused). One step from moving_variance = 1 with momentum d = 0 (the moving variance becomes the fed
variance) on a batch whose biased variance is 1.25 ([1,2,3,4]-like values per channel).
Prints fed / biased: 1 = biased (documented), n/(n-1) = unbiased.
"""
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf
import tf_keras

def fed(shape, axis, dtype, fused, jit):
    lay = tf_keras.layers.BatchNormalization(axis=axis, momentum=0.0, epsilon=1e-5, dtype=dtype, fused=fused)
    lay.build(shape)
    C = shape[axis]
    n = int(np.prod(shape)) // C
    vals = np.arange(1, n + 1, dtype=np.float64)
    x = np.moveaxis(np.broadcast_to(vals.reshape((1,) + tuple(s for i, s in enumerate(shape) if i != axis % len(shape))), (C,) + tuple(s for i, s in enumerate(shape) if i != axis % len(shape))), 0, axis % len(shape)).copy()
    step = lambda t: lay(t, training=True)
    if jit:
        step = tf.function(step, jit_compile=True)
    step(tf.constant(x, dtype.replace('mixed_', '')))
    biased = vals.var()
    got = float(lay.moving_variance.numpy()[0])
    return n, got / biased if biased else float("nan"), lay.fused

for shape, axis in [((2, 3, 2, 2), 1), ((2, 2, 2, 3), -1), ((2, 3, 2, 2, 2), 1), ((8, 3), -1), ((2, 3, 4), 1), ((1, 3, 1, 1), 1), ((2, 3, 1, 1), 1)]:
    for dtype in ("float32", "float16", "float64"):
        for jit in (False, True):
            n, r, fu = fed(shape, axis, dtype if dtype != "float16" else "mixed_float16", None, jit)
            print(f"shape {shape} axis {axis:2} {dtype:8} {'XLA  ' if jit else 'eager'} layer.fused={fu!s:5} n={n:3}: "
                  f"fed/biased = {r:.6f}   n/(n-1) = {n / (n - 1) if n > 1 else float('nan'):.6f}")
