"""Keras 3: keras.layers.BatchNormalization on the tensorflow, jax and torch backends.

Keras fixes its backend when it is imported (KERAS_BACKEND, keras/src/backend/config.py),
so each backend runs in its own persistent worker process (adapters/_worker.py; the
registry, adapters/registry.py, gives each variant its KERAS_BACKEND); ``Keras3`` is what
runs inside the worker. Variants: keras3.tensorflow, keras3.jax, keras3.torch, and
keras3.tensorflow.xla (the step inside tf.function(jit_compile=True), traced once per
shape and configuration). Preset "keras3". The mapping of a case onto the layer is
adapters/_keras.py's (shared with tf-keras); the layer itself upcasts 16-bit inputs to
float32 for its math (``compute_dtype = backend.result_type(inputs.dtype, "float32")``,
"BN is prone to overflow with float16/bfloat16 inputs") and casts y back.

Gradients: tf.GradientTape (tensorflow), jax.vjp over ``layer.stateless_call`` (jax),
torch autograd (torch).
"""
from __future__ import annotations

import numpy as np

from ._keras import KerasHooks
from .devices import gpus_visible
from .scenario import Step


class Keras3(KerasHooks):
    framework = "keras"
    convention = "keras3"

    def __init__(self, backend: str = "tensorflow", jit: bool = False):
        super().__init__()
        self.backend, self.jit = backend, jit
        self.family = backend
        self.name = f"keras3.{backend}" + (".xla" if jit else "")

    def keras(self):
        import keras
        return keras

    def version(self) -> str:
        from importlib import metadata
        return metadata.version("keras")

    def devices(self) -> list[str]:
        """cpu, and cuda where the backend sees an NVIDIA GPU (asked only when a GPU device node
        exists: adapters/devices.py)."""
        if not gpus_visible():
            return ["cpu"]
        if self.backend == "torch":
            import torch
            gpu = torch.cuda.is_available()
        elif self.backend == "jax":
            from ._jax import jax_
            gpu = any(d.platform == "gpu" for d in jax_().devices())
        else:
            import tensorflow as tf
            gpu = bool(tf.config.list_physical_devices("GPU"))
        return ["cpu"] + (["cuda"] if gpu else [])

    def device_env(self, device: str) -> dict:
        """The environment of the worker that runs ``device``: Keras places every tensor on the
        backend's default device, fixed when the backend is imported (torch: KERAS_TORCH_DEVICE,
        keras/src/backend/torch/core.py; jax: JAX_PLATFORMS; tensorflow: the visible GPUs)."""
        cuda = device == "cuda"
        if self.backend == "torch":
            return {"KERAS_TORCH_DEVICE": "cuda" if cuda else "cpu"}
        if self.backend == "jax":
            return {"JAX_PLATFORMS": "cuda" if cuda else "cpu"}
        return {} if cuda else {"CUDA_VISIBLE_DEVICES": ""}

    def supports(self, pb, device):
        if pb.replicas:
            return "cross-replica statistics need synchronized=True under a distribution strategy (not this variant)"
        return super().supports(pb, device)

    def step(self, lay, x, dy, training):
        if self.backend == "tensorflow":
            return self.tf_call(lay, x, dy, training)
        layer, pb = lay.layer, lay.pb
        dy = dy if dy is not None else np.zeros(pb.shape)
        if self.backend == "jax":
            import jax
            import jax.numpy as jnp
            # converted on the host (exact: the suite's values are exact in the case's dtype), then
            # copied to the device: an eager astype compiles once per shape and dtype
            dt = jnp.bfloat16 if pb.dtype == "bfloat16" else np.dtype(pb.dtype)
            xj, dyj = jnp.array(np.asarray(x).astype(dt)), jnp.array(np.asarray(dy).astype(dt))  # copies
            tv = [v.value for v in layer.trainable_variables]
            ntv = [v.value for v in layer.non_trainable_variables]

            def f(tv, x):
                return layer.stateless_call(tv, ntv, x, training=training)

            # Eager (op-by-op) vjp: measured faster here than a jax.jit per config, which compiles
            # once per shape and config and is rarely reused across the grid (1.2 s vs 0.6 s a case).
            y, vjp, new_ntv = jax.vjp(f, tv, xj, has_aux=True)
            dtv, dx = vjp(dyj)
            for v, val in zip(layer.non_trainable_variables, new_ntv):
                v.assign(val)
            grads = {v.path.rsplit("/", 1)[-1]: g for v, g in zip(layer.trainable_variables, dtv)}
            return Step(y, dx, grads.get("gamma"), grads.get("beta"))
        import torch
        tdt = getattr(torch, pb.dtype)
        # contiguous copies: torch keeps a NumPy array's strides, and the inputs are built channel-first
        dev = self.keras().src.backend.torch.core.get_device()    # the worker's device (device_env)
        xt = torch.tensor(np.ascontiguousarray(x), dtype=tdt, device=dev, requires_grad=True)
        y = layer(xt, training=training)
        y.backward(torch.tensor(np.ascontiguousarray(dy), dtype=tdt, device=dev))
        g = b = None
        if layer.scale and layer.trainable:
            g, b = layer.gamma.value.grad.clone(), layer.beta.value.grad.clone()
            layer.gamma.value.grad = layer.beta.value.grad = None
        return Step(y, xt.grad, g, b)

    def to_numpy(self, t) -> np.ndarray:
        if self.backend == "torch" and hasattr(t, "detach"):
            import torch
            return t.detach().to("cpu", torch.float64).numpy()
        if self.backend == "jax" and not isinstance(t, np.ndarray) and hasattr(t, "dtype") and not hasattr(t, "path"):
            return np.asarray(t).astype(np.float64)
        if hasattr(t, "path"):       # a keras.Variable
            return np.asarray(self.keras().ops.convert_to_numpy(t), np.float64)
        return super().to_numpy(t)
