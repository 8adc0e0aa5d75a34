"""Checking a third-party batch norm with the suite: tinygrad's ``nn.BatchNorm``.

Written the way README.md ("Checking a new backend") tells a user to: a copy of
adapters/template.py, filled in. Run it with

    pytest conformance/ --adapter examples/tinygrad_adapter.py:TinygradBatchNorm

and read its conventions with

    python -m bn_conformance.fingerprint examples/tinygrad_adapter.py:TinygradBatchNorm

tinygrad facts this adapter relies on (tinygrad 0.14, tinygrad/nn/__init__.py):
  * ``BatchNorm(sz, eps=1e-5, affine=True, track_running_stats=True, momentum=0.1)``;
    the channel is axis 1 and statistics reduce every other axis.
  * Training mode is the ``TRAINING`` context variable (tinygrad/helpers.py, default 0:
    inference); ``with Context(TRAINING=1)`` trains. There is no module-level mode flag.
  * Gradients: ``y.backward(dy)`` fills ``.grad`` of every float tensor in the graph
    (tinygrad/tensor.py ``Tensor.backward``).
  * A device must be selectable; here the CPU backend (``DEV=CPU``), which compiles
    kernels with the system C compiler.
"""
from __future__ import annotations

import os

import numpy as np

from bn_conformance.adapters import Hooks, Problem, Step

os.environ.setdefault("DEV", "CPU")


class TinygradBatchNorm(Hooks):
    name = "tinygrad.nn"
    framework = "tinygrad"
    convention = "tinygrad"          # preset in reference/conventions.toml

    def version(self) -> str:
        from importlib.metadata import version
        return version("tinygrad")

    def devices(self) -> list[str]:
        return ["cpu"]

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.axis != 1:
            return "tinygrad BatchNorm normalises axis 1 (reduce_axes = every axis but 1)"
        if pb.momentum is None:
            return "tinygrad BatchNorm has no cumulative average (momentum is a float)"
        if pb.mode == "frozen":
            return "tinygrad has no layer freeze: the mode is the global TRAINING context variable"
        if pb.dtype == "bfloat16":
            return "bfloat16 is not exercised here: the CPU backend's bfloat16 support is not documented"
        return None

    # -- the scenario's hooks (bn_conformance.adapters.scenario plays train/infer/fresh) ------
    def create(self, pb: Problem, device: str):
        from tinygrad import Tensor, dtypes, nn
        pdt = {"float32": dtypes.float32, "float64": dtypes.float64}[pb.param_dtype]
        bn = nn.BatchNorm(pb.channels, eps=pb.eps, affine=pb.affine, track_running_stats=pb.track_running_stats,
                          momentum=pb.momentum)
        if pb.affine:
            bn.weight = Tensor(pb.gamma.astype(pb.param_dtype), dtype=pdt)
            bn.bias = Tensor(pb.beta.astype(pb.param_dtype), dtype=pdt)
        if pb.track_running_stats:     # the layer's own zeros and ones, in the parameter dtype
            bn.running_mean = Tensor(np.zeros(pb.channels, pb.param_dtype), dtype=pdt)
            bn.running_var = Tensor(np.ones(pb.channels, pb.param_dtype), dtype=pdt)
        return {"bn": bn, "pb": pb, "pdt": pdt}

    def load_stats(self, layer, mean, var):
        from tinygrad import Tensor
        pb, pdt = layer["pb"], layer["pdt"]
        layer["bn"].running_mean = Tensor(np.asarray(mean).astype(pb.param_dtype), dtype=pdt)
        layer["bn"].running_var = Tensor(np.asarray(var).astype(pb.param_dtype), dtype=pdt)
        return layer

    def forward(self, layer, x, dy, training):
        from tinygrad import Context, Tensor, dtypes
        bn, pb = layer["bn"], layer["pb"]
        dt = {"float16": dtypes.float16, "float32": dtypes.float32, "float64": dtypes.float64}[pb.dtype]
        xt = Tensor(np.asarray(x).astype(pb.dtype), dtype=dt)
        with Context(TRAINING=int(training)):
            y = bn(xt)
            if dy is None:
                return Step(y.numpy()), layer
            y.backward(Tensor(np.asarray(dy).astype(pb.dtype), dtype=dt))
        step = Step(y.numpy(), xt.grad.numpy())
        if pb.affine:
            step.dgamma, step.dbeta = bn.weight.grad.numpy(), bn.bias.grad.numpy()
            bn.weight.grad = bn.bias.grad = None
        return step, layer

    def stats(self, layer):
        return layer["bn"].running_mean.numpy(), layer["bn"].running_var.numpy()
