"""Keras 3: keras.layers.BatchNormalization on the tensorflow, jax and torch backends.

Keras fixes its backend when it is imported (KERAS_BACKEND, keras/src/backend/config.py),
so each backend runs in its own persistent child process (adapters/_worker.py); the
``Keras3`` class below is what runs inside the child. Variants: keras3.tensorflow,
keras3.jax, keras3.torch, and keras3.tensorflow.xla (the step inside
tf.function(jit_compile=True), traced once per shape/config and reused with the layer's
variables reset for each case). Preset "keras3".

How the case maps onto the layer (keras/src/layers/normalization/batch_normalization.py):
  * momentum: the layer's ``momentum`` is the old-value weight d
    (``moving_mean * self.momentum + mean * (1.0 - self.momentum)`` in ``call``); it gets
    d = 1 - f. axis = the case's channel axis (any axis is accepted); epsilon = eps;
    center = scale = affine.
  * 16-bit inputs: the dtype policy a user writes for mixed precision,
    ``dtype="mixed_float16"`` / ``"mixed_bfloat16"`` (float32 variables, 16-bit compute
    dtype: https://keras.io/api/mixed_precision/policy/). The layer itself upcasts to
    float32 for its math (``compute_dtype = backend.result_type(inputs.dtype, "float32")``,
    "BN is prone to overflow with float16/bfloat16 inputs") and casts y back.
    float32/float64 cases use dtype="float32"/"float64".
  * frozen: ``layer.trainable = False`` then ``layer(x, training=True)``; ``call`` branches
    on ``if training and self.trainable`` (inference with the moving statistics).
  * not expressible: momentum=None (cumulative) and track_running_stats=False (the layer
    always keeps moving statistics) -> skip.
Gradients: tf.GradientTape (tensorflow), jax.vjp over ``layer.stateless_call`` (jax),
torch autograd (torch).
"""
from __future__ import annotations

import os

import numpy as np

from .protocol import Problem, scenario

_POLICY = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16", "float32": "float32", "float64": "float64"}
BACKENDS = ("tensorflow", "jax", "torch")


class Keras3:
    framework = "keras"
    convention = "keras3"

    def __init__(self, backend: str, jit: bool = False):
        self.backend, self.jit = backend, jit
        self.name = f"keras3.{backend}" + (".xla" if jit else "")
        self._cache: dict = {}

    def version(self) -> str:
        import keras
        return keras.__version__

    def devices(self) -> list[str]:
        return ["cpu"]

    def supports(self, pb: Problem, device: str) -> str | None:
        if device != "cpu":
            return "only the CPU is exercised for Keras 3 (the backend places tensors itself)"
        if pb.momentum is None:
            return ("cumulative average (momentum=None) cannot be expressed: BatchNormalization takes a float "
                    "momentum (keras/src/layers/normalization/batch_normalization.py __init__)")
        if not pb.track_running_stats:
            return ("BatchNormalization always keeps moving statistics: there is no track_running_stats option "
                    "(keras/src/layers/normalization/batch_normalization.py __init__ arguments)")
        return None

    # -- layer ---------------------------------------------------------------------------------
    def _layer(self, pb: Problem):
        import keras
        layer = keras.layers.BatchNormalization(axis=pb.axis, momentum=1.0 - pb.momentum, epsilon=pb.eps,
                                                center=pb.affine, scale=pb.affine, dtype=_POLICY[pb.dtype])
        layer.build(pb.shape)
        return layer

    def _reset(self, layer, pb: Problem):
        pdt = pb.param_dtype
        if pb.affine:
            layer.gamma.assign(pb.gamma.astype(pdt))
            layer.beta.assign(pb.beta.astype(pdt))
        rm = pb.running_mean if pb.running_mean is not None else np.zeros(pb.channels)  # initializer "zeros"
        rv = pb.running_var if pb.running_var is not None else np.ones(pb.channels)     # initializer "ones"
        layer.moving_mean.assign(np.asarray(rm, pdt))
        layer.moving_variance.assign(np.asarray(rv, pdt))
        layer.trainable = pb.mode != "frozen"

    def _get_layer(self, pb: Problem):
        """One layer per config (shape, dtype, axis, momentum, eps, affine, frozen), reused with its
        variables reset for each case (building a layer per case dominated the run time); for
        the XLA variant also one compiled step per config."""
        key = (pb.shape, pb.dtype, pb.axis, pb.momentum, pb.eps, pb.affine, pb.mode == "frozen")
        if key not in self._cache:
            if len(self._cache) >= 256:   # hypothesis shapes: bound the memory
                self._cache.clear()
            layer = self._layer(pb)
            self._reset(layer, pb)
            fn = None
            if self.jit:
                import tensorflow as tf
                fn = tf.function(lambda x, dy, training: self._tf_step(layer, x, dy, training), jit_compile=True)
            self._cache[key] = (layer, fn)
        layer, fn = self._cache[key]
        self._reset(layer, pb)
        return layer, fn

    # -- one step per backend: returns y, dx, dgamma, dbeta as NumPy -------------------------
    def _tf_step(self, layer, x, dy, training):
        import tensorflow as tf
        params = [layer.gamma, layer.beta] if (layer.scale and layer.trainable) else []
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
        grads = tape.gradient(y, [x] + params, output_gradients=dy)
        return (y, grads[0]) + (tuple(grads[1:]) if params else (None, None))

    def _step(self, layer, fn, pb: Problem, k: int, training: bool):
        xk, dyk = pb.x[k], pb.dy[k]
        if self.backend == "tensorflow":
            import tensorflow as tf
            x = tf.cast(tf.constant(xk), pb.dtype)
            dy = tf.cast(tf.constant(dyk), pb.dtype)
            out = (fn or (lambda *a: self._tf_step(layer, *a)))(x, dy, training)
            return [None if t is None else tf.cast(t, tf.float64).numpy() for t in out]
        if self.backend == "jax":
            import jax
            import jax.numpy as jnp
            x, dy = jnp.asarray(xk).astype(pb.dtype), jnp.asarray(dyk).astype(pb.dtype)
            tv = [v.value for v in layer.trainable_variables]
            ntv = [v.value for v in layer.non_trainable_variables]

            def f(tv, x):
                y, new_ntv = layer.stateless_call(tv, ntv, x, training=training)
                return y, new_ntv

            # Eager (op-by-op) vjp: measured faster here than a jax.jit per config, which compiles
            # once per shape and config and is rarely reused across the grid (1.2 s vs 0.6 s a case).
            y, vjp, new_ntv = jax.vjp(f, tv, x, has_aux=True)
            dtv, dx = vjp(dy)
            for v, val in zip(layer.non_trainable_variables, new_ntv):
                v.assign(val)
            names = [v.path for v in layer.trainable_variables]
            grads = {n.rsplit("/", 1)[-1]: g for n, g in zip(names, dtv)}
            conv = lambda t: None if t is None else np.asarray(t.astype(jnp.float64) if t.dtype == jnp.float64
                                                                 else t.astype(jnp.float32), np.float64)
            return [conv(y), conv(dx), conv(grads.get("gamma")), conv(grads.get("beta"))]
        import torch
        tdt = getattr(torch, pb.dtype)
        x = torch.from_numpy(np.ascontiguousarray(xk)).to(tdt).requires_grad_(True)
        dy = torch.from_numpy(np.ascontiguousarray(dyk)).to(tdt)
        y = layer(x, training=training)
        y.backward(dy)
        conv = lambda t: None if t is None else t.detach().to(torch.float64).cpu().numpy()
        g = b = None
        if layer.scale and layer.trainable:
            g, b = conv(layer.gamma.value.grad), conv(layer.beta.value.grad)
            layer.gamma.value.grad = layer.beta.value.grad = None
        return [conv(y), conv(x.grad), g, b]

    def _stats(self, layer):
        import keras
        return [np.asarray(keras.ops.convert_to_numpy(v), np.float64) for v in (layer.moving_mean, layer.moving_variance)]

    def run(self, pb: Problem, device: str) -> dict[str, np.ndarray]:
        layer, fn = self._get_layer(pb)
        out: dict[str, list] = {}

        def record(k, training):
            y, dx, dg, db = self._step(layer, fn, pb, k, training)
            out.setdefault("y", []).append(y)
            out.setdefault("dx", []).append(dx)
            if dg is not None:
                out.setdefault("dgamma", []).append(dg)
                out.setdefault("dbeta", []).append(db)
            rm, rv = self._stats(layer)
            out.setdefault("running_mean", []).append(rm)
            out.setdefault("running_var", []).append(rv)

        # frozen: trainable=False is set in _reset
        y_eval = scenario(pb, record, lambda k: self._step(layer, fn, pb, k, False)[0])
        res = {k: np.stack(v) for k, v in out.items()}
        if pb.mode == "train":
            res["y_eval"] = y_eval
        return res


def adapters():
    from importlib.util import find_spec

    from ._worker import Proxy
    if find_spec("keras") is None:
        raise ImportError("keras is not installed")
    out = []
    for backend in BACKENDS:
        if find_spec(backend) is None:
            continue
        env = {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        if backend == "jax":
            env["JAX_ENABLE_X64"] = "1"   # float64 cases need 64-bit JAX arrays (jax docs: "Double (64bit) precision")
        for jit in ((False, True) if backend == "tensorflow" else (False,)):
            local = Keras3(backend, jit)
            proxy = Proxy(local.name, "keras", "keras3", "adapters.keras3:Keras3",
                          {"backend": backend, "jit": jit}, env=env, local=local)
            if jit:
                # Opt-in (--adapter / --all-adapters): the slowest variant (an XLA compile per shape and
                # config, ~0.7 s a case) and redundant: the tensorflow backend lowers the layer to the same
                # tf.nn.moments / tf.nn.batch_normalization graph that tf.nn.xla compiles, and measured the
                # same deviations (huge-magnitude dx under XLA, empty batch).
                proxy.default = False
            out.append(proxy)
    if not out:
        raise ImportError("no Keras 3 backend (tensorflow, jax, torch) is installed")
    return out
