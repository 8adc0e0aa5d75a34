"""tf-keras (Keras 2, package tf_keras): tf_keras.layers.BatchNormalization.

Variants (preset "tf_keras"):
  tf_keras           fused=None, the default: the layer picks its own code path
                     (tf_keras/src/layers/normalization/batch_normalization.py, build):
                     fused (FusedBatchNormV3) for rank 4 with axis 1/3 and rank 5 with
                     axis 1/4 when the compute dtype is float16/bfloat16/float32
                     (_fused_can_be_used / _raise_if_fused_cannot_be_used); otherwise
                     non-fused (tf.nn.moments). float64 is always non-fused.
  tf_keras.nonfused  fused=False: always the tf.nn.moments path.
  tf_keras.xla       fused=None inside tf.function(jit_compile=True), one layer and one
                     traced step per shape/config, variables reset for each case. Inside XLA
                     the fused path does not use the kernel's running averages
                     (_fused_batch_norm: use_fused_avg_updates needs
                     get_enclosing_xla_context() is None) but _assign_moving_average.

Mapping: momentum = d = 1 - f (old-value weight: `variable - (variable - value) * (1 -
momentum)`, _assign_moving_average); axis = the case's channel axis; center = scale =
affine. 16-bit inputs: dtype="mixed_float16"/"mixed_bfloat16" (float32 variables, 16-bit
compute; https://www.tensorflow.org/guide/mixed_precision), the layer then upcasts to
float32 itself on the non-fused path ("Do all math in float32 if given 16-bit inputs") and
passes float32 scale/offset/statistics to the fused kernel. Frozen: trainable=False, then
training=True (_get_training_value: "When the layer is not trainable, it overrides the
value passed from model. training = False"). Not expressible: momentum=None,
track_running_stats=False. renorm and virtual_batch_size are not exercised: the reference
has no semantics for them (renorm's r/d clipping, ghost batches of strided samples).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from functools import lru_cache

import numpy as np

from .protocol import Problem, scenario

_POLICY = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16", "float32": "float32", "float64": "float64"}


@lru_cache(maxsize=None)
def _mods():
    import tensorflow as tf
    import tf_keras
    return tf, tf_keras


def _np(t) -> np.ndarray:
    tf, _ = _mods()
    return tf.cast(t, tf.float64).numpy()


class TfKeras:
    framework = "tf_keras"
    convention = "tf_keras"
    name = "tf_keras"
    fused: bool | None = None
    jit = False

    def __init__(self):
        self._cache: dict = {}

    def version(self) -> str:
        return _mods()[1].__version__

    def devices(self) -> list[str]:
        tf, _ = _mods()
        return ["cpu"] + (["cuda"] if tf.config.list_physical_devices("GPU") else [])

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.momentum is None:
            return "cumulative average (momentum=None) cannot be expressed: BatchNormalization takes a float momentum"
        if not pb.track_running_stats:
            return "BatchNormalization always keeps moving statistics (no track_running_stats option)"
        return None

    def _layer(self, pb: Problem):
        _, tfk = _mods()
        layer = tfk.layers.BatchNormalization(axis=pb.axis, momentum=1.0 - pb.momentum, epsilon=pb.eps,
                                              center=pb.affine, scale=pb.affine, fused=self.fused,
                                              dtype=_POLICY[pb.dtype])
        layer.build(pb.shape)
        return layer

    def _reset(self, layer, pb: Problem):
        if pb.affine:
            layer.gamma.assign(pb.gamma.astype(np.float32 if pb.param_dtype == "float32" else np.float64))
            layer.beta.assign(pb.beta.astype(layer.beta.dtype.as_numpy_dtype))
        rm = pb.running_mean if pb.running_mean is not None else np.zeros(pb.channels)
        rv = pb.running_var if pb.running_var is not None else np.ones(pb.channels)
        layer.moving_mean.assign(np.asarray(rm, layer.moving_mean.dtype.as_numpy_dtype))
        layer.moving_variance.assign(np.asarray(rv, layer.moving_variance.dtype.as_numpy_dtype))
        layer.trainable = pb.mode != "frozen"

    @staticmethod
    def _step(layer, x, dy, training):
        tf, _ = _mods()
        params = [layer.gamma, layer.beta] if (layer.scale and layer.trainable) else []
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
        grads = tape.gradient(y, [x] + params, output_gradients=dy)
        return (y, grads[0]) + (tuple(grads[1:]) if params else (None, None))

    def _prepare(self, pb: Problem):
        tf, _ = _mods()
        if not self.jit:
            layer = self._layer(pb)
            self._reset(layer, pb)
            return layer, lambda x, dy, training: self._step(layer, x, dy, training)
        key = (pb.shape, pb.dtype, pb.axis, pb.momentum, pb.eps, pb.affine, pb.mode == "frozen")
        if key not in self._cache:
            layer = self._layer(pb)
            self._reset(layer, pb)
            self._cache[key] = (layer, tf.function(lambda x, dy, training: self._step(layer, x, dy, training),
                                                   jit_compile=True))
        layer, fn = self._cache[key]
        self._reset(layer, pb)
        return layer, fn

    def run(self, pb: Problem, device: str) -> dict[str, np.ndarray]:
        tf, _ = _mods()
        with tf.device("/GPU:0" if device == "cuda" else "/CPU:0"):
            layer, fn = self._prepare(pb)
            out: dict[str, list] = {}

            def call(k, training):
                x = tf.cast(tf.constant(pb.x[k]), pb.dtype)
                dy = tf.cast(tf.constant(pb.dy[k]), pb.dtype)
                return fn(x, dy, training)

            def record(k, training):
                y, dx, dg, db = call(k, training)
                out.setdefault("y", []).append(_np(y))
                out.setdefault("dx", []).append(_np(dx))
                if dg is not None:
                    out.setdefault("dgamma", []).append(_np(dg))
                    out.setdefault("dbeta", []).append(_np(db))
                out.setdefault("running_mean", []).append(_np(layer.moving_mean))
                out.setdefault("running_var", []).append(_np(layer.moving_variance))

            # frozen: trainable=False is set in _reset
            y_eval = scenario(pb, record, lambda k: _np(call(k, False)[0]))
        res = {k: np.stack(v) for k, v in out.items()}
        if pb.mode == "train":
            res["y_eval"] = y_eval
        return res


class TfKerasNonFused(TfKeras):
    name = "tf_keras.nonfused"
    fused = False


class TfKerasXla(TfKeras):
    name = "tf_keras.xla"
    jit = True


def adapters():
    _mods()  # ImportError here means the framework is not installed
    return [TfKeras(), TfKerasNonFused(), TfKerasXla()]
