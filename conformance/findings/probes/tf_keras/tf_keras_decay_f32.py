"""tf_keras float64 layer: the moving-average weight goes through float32.

_assign_moving_average: decay = tf.convert_to_tensor(1.0 - momentum) -> float32 tensor (Python float
converts to float32), then tf.cast(decay, float64). For momentum d = 0.9 (new-batch weight f = 0.1) the
weight applied is float32(0.1) = 0.100000001490116..., relative error 1.5e-8.
Measured: one training step from moving_mean = 0 on a batch of mean m gives m * w_applied.
"""
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf
import tf_keras

for fused in (None, False):
    for d in (0.9, 0.99, 0.5, 0.0, 0.7):
        lay = tf_keras.layers.BatchNormalization(axis=-1, momentum=d, epsilon=1e-5, dtype="float64", fused=fused)
        x = np.full((4, 3), 1.0) + np.array([[1.0], [-1.0], [1.0], [-1.0]])   # mean 1 exactly, var 1
        x = x * 3.0  # mean 3
        lay(tf.constant(x), training=True)
        w = float(lay.moving_mean.numpy()[0]) / 3.0
        f = 1.0 - d
        print(f"fused={fused!s:5} momentum d={d}: weight applied {w!r:24} float64 1-d {f!r:22} "
              f"float32(1-d) {float(np.float32(f))!r:24} rel.err {abs(w - f) / f if f else 0:.2e}")
