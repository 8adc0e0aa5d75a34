"""Hooks shared by the two Keras BatchNormalization layers: tf-keras (Keras 2,
adapters/tf_keras.py) and Keras 3 (adapters/keras3.py). One base class; the subclasses say
which module builds the layer and how one call is differentiated on their backend.

How a case maps onto the layer (tf_keras/src/layers/normalization/batch_normalization.py,
keras/src/layers/normalization/batch_normalization.py):
  * momentum: the layer's ``momentum`` is the old-value weight d
    (``moving_mean * momentum + mean * (1 - momentum)``); it gets d = 1 - f. axis = the
    case's channel axis (any axis is accepted); epsilon = eps; center = scale = affine.
  * 16-bit inputs: the dtype policy a user writes for mixed precision, "mixed_float16" /
    "mixed_bfloat16" (float32 variables, 16-bit compute dtype:
    https://keras.io/api/mixed_precision/policy/); float32/float64 cases use "float32" /
    "float64".
  * frozen: ``layer.trainable = False`` then ``layer(x, training=True)`` (Keras runs a
    non-trainable BatchNormalization in inference mode: tf_keras _get_training_value,
    Keras 3 ``call``: ``if training and self.trainable``).
  * not expressible: momentum=None (cumulative) and track_running_stats=False (the layer
    always keeps moving statistics) -> skip.

Layers are built once per configuration (shape, dtype, axis, momentum, eps, affine, frozen)
and reused: ``create`` resets a cached layer's variables with the layer's own initializers
(moving_mean_initializer "zeros", moving_variance_initializer "ones"), which is the state a
new layer has; a "fresh" case always gets a newly built layer.
"""
from __future__ import annotations

import numpy as np

from .protocol import Problem
from .scenario import COMPILES, Hooks, Step

POLICY = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16", "float32": "float32", "float64": "float64"}


class KerasHooks(Hooks):
    jit = False            # the step inside tf.function(jit_compile=True) (TensorFlow backends only)
    cache_limit = 256      # layers kept (hypothesis draws many shapes)

    def __init__(self):
        self._cache: dict = {}

    # -- what a subclass says --------------------------------------------------------------------
    def keras(self):
        """The module whose ``layers.BatchNormalization`` is under test."""
        raise NotImplementedError

    def layer_kwargs(self, pb: Problem) -> dict:
        return dict(axis=pb.axis, momentum=1.0 - pb.momentum, epsilon=pb.eps, center=pb.affine, scale=pb.affine,
                    dtype=POLICY[pb.dtype])

    def step(self, layer, x, dy, training: bool) -> Step:
        """One call, and its gradients when ``dy`` is not None (backend-specific)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------
    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.momentum is None:
            return ("cumulative average (momentum=None) cannot be expressed: BatchNormalization takes a float "
                    "momentum (batch_normalization.py __init__)")
        if not pb.track_running_stats:
            return ("BatchNormalization always keeps moving statistics: there is no track_running_stats option "
                    "(batch_normalization.py __init__ arguments)")
        return None

    def build(self, pb: Problem):
        layer = self.keras().layers.BatchNormalization(**self.layer_kwargs(pb))
        layer.build(pb.shape)
        return layer

    def create(self, pb: Problem, device: str):
        if pb.mode == "fresh":     # a newly built layer: its own initial statistics, the case's gamma and beta
            lay = _Layer(self.build(pb), None, pb)
            self._set_params(lay.layer, pb)
            return lay
        key = (pb.shape, pb.dtype, pb.axis, pb.momentum, pb.eps, pb.affine, pb.mode == "frozen")
        if key not in self._cache:
            if len(self._cache) >= self.cache_limit:
                self._cache.clear()
            layer = self.build(pb)
            self._cache[key] = _Layer(layer, self.compiled(layer), pb)
        lay = self._cache[key]
        lay.pb = pb
        layer = lay.layer
        layer.trainable = True
        self._set_params(layer, pb)
        for v, init in ((layer.moving_mean, layer.moving_mean_initializer),
                        (layer.moving_variance, layer.moving_variance_initializer)):
            v.assign(init(tuple(v.shape), dtype=pb.param_dtype))
        return lay

    @staticmethod
    def _set_params(layer, pb: Problem) -> None:
        if pb.affine:
            layer.gamma.assign(np.asarray(pb.gamma, pb.param_dtype))
            layer.beta.assign(np.asarray(pb.beta, pb.param_dtype))

    def compiled(self, layer):
        """The step inside tf.function(jit_compile=True), traced once per layer (XLA variants)."""
        if not self.jit:
            return None
        import tensorflow as tf
        return tf.function(lambda x, dy, training: self.tf_step(layer, x, dy, training), jit_compile=True)

    def load_stats(self, lay, mean, var):
        lay.layer.moving_mean.assign(np.asarray(mean, lay.pb.param_dtype))
        lay.layer.moving_variance.assign(np.asarray(var, lay.pb.param_dtype))
        return lay

    def freeze(self, lay):
        lay.layer.trainable = False
        return lay

    def forward(self, lay, x, dy, training):
        return self.step(lay, x, dy, training), lay

    def stats(self, lay):
        return self.to_numpy(lay.layer.moving_mean), self.to_numpy(lay.layer.moving_variance)

    # -- the TensorFlow step (tf-keras, and Keras 3 on its tensorflow backend) --------------------
    @staticmethod
    def tf_step(layer, x, dy, training):
        import tensorflow as tf
        params = [layer.gamma, layer.beta] if (layer.scale and layer.trainable) else []
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
        grads = tape.gradient(y, [x] + params, output_gradients=dy)
        return (y, grads[0]) + (tuple(grads[1:]) if params else (None, None))

    def tf_call(self, lay, x, dy, training) -> Step:
        import tensorflow as tf
        pb = lay.pb
        xt = tf.cast(tf.constant(np.array(x)), pb.dtype)
        dyt = tf.cast(tf.constant(np.array(dy if dy is not None else np.zeros(pb.shape))), pb.dtype)
        if lay.fn is not None:
            return Step(*COMPILES.traced(lay.fn, xt, dyt, training))
        return Step(*self.tf_step(lay.layer, xt, dyt, training))

    def to_numpy(self, t) -> np.ndarray:
        if hasattr(t, "numpy") and not isinstance(t, np.ndarray):
            import tensorflow as tf
            return np.asarray(tf.cast(t, tf.float64).numpy())
        return np.array(t, dtype=np.float64)


class _Layer:
    def __init__(self, layer, fn, pb):
        self.layer, self.fn, self.pb = layer, fn, pb
