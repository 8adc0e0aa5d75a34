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

Mapping (adapters/_keras.py, shared with Keras 3): momentum = d = 1 - f (old-value weight:
`variable - (variable - value) * (1 - momentum)`, _assign_moving_average). 16-bit inputs
run under "mixed_float16"/"mixed_bfloat16" (https://www.tensorflow.org/guide/mixed_precision);
the layer upcasts to float32 itself on the non-fused path ("Do all math in float32 if given
16-bit inputs") and passes float32 scale/offset/statistics to the fused kernel. Frozen:
trainable=False, then training=True (_get_training_value: "When the layer is not
trainable, it overrides the value passed from model. training = False"). renorm and
virtual_batch_size are not exercised: the reference has no semantics for them (renorm's
r/d clipping, ghost batches of strided samples).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from importlib import metadata

from ._keras import KerasHooks
from .devices import gpus_visible


class TfKeras(KerasHooks):
    framework = "tf_keras"
    family = "tensorflow"
    convention = "tf_keras"
    name = "tf_keras"
    fused: bool | None = None

    def keras(self):
        import tf_keras
        return tf_keras

    def version(self) -> str:
        return metadata.version("tf_keras")

    def devices(self) -> list[str]:
        if not gpus_visible():          # no GPU device node: do not import TensorFlow to ask
            return ["cpu"]
        import tensorflow as tf
        return ["cpu"] + (["cuda"] if tf.config.list_physical_devices("GPU") else [])

    def supports(self, pb, device):
        if pb.replicas:
            return "cross-replica statistics need synchronized=True under a tf.distribute strategy (not this variant)"
        return super().supports(pb, device)

    def layer_kwargs(self, pb):
        return super().layer_kwargs(pb) | {"fused": self.fused}

    def step(self, lay, x, dy, training):
        return self.tf_call(lay, x, dy, training)

    def run(self, pb, device):
        import tensorflow as tf
        with tf.device("/GPU:0" if device == "cuda" else "/CPU:0"):
            return super().run(pb, device)


class TfKerasNonFused(TfKeras):
    name = "tf_keras.nonfused"
    fused = False


class TfKerasXla(TfKeras):
    name = "tf_keras.xla"
    jit = True
