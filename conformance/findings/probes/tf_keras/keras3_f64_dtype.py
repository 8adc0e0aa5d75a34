"""What dtype does Keras 3 BatchNormalization compute in for float64 inputs, per backend?
run: KERAS_BACKEND=jax JAX_ENABLE_X64=1 python keras3_f64_dtype.py ; KERAS_BACKEND=torch python ...; KERAS_BACKEND=tensorflow ...
"""
import os
import numpy as np
import keras
from keras import backend, ops

print("backend", backend.backend(), "keras", keras.__version__, "JAX_ENABLE_X64", os.environ.get("JAX_ENABLE_X64"))
print("result_type(float64, float32) =", backend.result_type("float64", "float32"))
lay = keras.layers.BatchNormalization(axis=-1, momentum=0.9, epsilon=1e-5, dtype="float64")
lay.build((16, 5))
print("variables:", [(v.path, v.dtype) for v in lay.weights])
x = np.random.default_rng(0).normal(size=(16, 5)) * 1.3 + 0.7
xt = ops.convert_to_tensor(x, dtype="float64")
print("input tensor dtype", ops.convert_to_tensor(xt).dtype)
y = lay(xt, training=True)
print("y dtype", y.dtype)
y = np.asarray(ops.convert_to_numpy(y), np.float64)
m, v = x.mean(0), x.var(0)
ref = (x - m) / np.sqrt(v + 1e-5)
print("max |y - ref| =", np.abs(y - ref).max(), "(float64 ~1e-16, float32 ~1e-7)")
# where does precision go? moments on the backend, in float64
mm, vv = ops.moments(xt, axes=[0])
print("ops.moments dtype", mm.dtype, "err mean", np.abs(np.asarray(ops.convert_to_numpy(mm)) - m).max())
print("moving_mean after step:", np.asarray(ops.convert_to_numpy(lay.moving_mean))[:2], "expected", 0.1 * m[:2])
