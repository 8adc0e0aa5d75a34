"""Checking a third-party batch norm with the suite: tinygrad's ``nn.BatchNorm``.

Written the way README.md ("Checking a new backend") tells a user to: a copy of
adapters/template.py, filled in. Run it with

    pytest conformance/ --adapter examples/tinygrad_adapter.py:TinygradBatchNorm

and read its conventions with

    python -m conformance.fingerprint examples/tinygrad_adapter.py:TinygradBatchNorm

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

from adapters.protocol import Problem

os.environ.setdefault("DEV", "CPU")


class TinygradBatchNorm:
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

    def run(self, pb: Problem, device: str) -> dict[str, np.ndarray]:
        from tinygrad import Context, Tensor, dtypes, nn
        dt = {"float16": dtypes.float16, "float32": dtypes.float32, "float64": dtypes.float64}[pb.dtype]
        pdt = {"float32": dtypes.float32, "float64": dtypes.float64}[pb.param_dtype]
        bn = nn.BatchNorm(pb.channels, eps=pb.eps, affine=pb.affine, track_running_stats=pb.track_running_stats,
                          momentum=pb.momentum)
        if pb.affine:
            bn.weight = Tensor(pb.gamma.astype(pb.param_dtype), dtype=pdt)
            bn.bias = Tensor(pb.beta.astype(pb.param_dtype), dtype=pdt)
        if pb.track_running_stats:
            rm = pb.running_mean if pb.running_mean is not None else np.zeros(pb.channels)
            rv = pb.running_var if pb.running_var is not None else np.ones(pb.channels)
            bn.running_mean = Tensor(rm.astype(pb.param_dtype), dtype=pdt)
            bn.running_var = Tensor(rv.astype(pb.param_dtype), dtype=pdt)
        out: dict[str, list] = {}

        def step(k, training):
            x = Tensor(pb.x[k].astype(pb.dtype), dtype=dt)
            with Context(TRAINING=int(training)):
                y = bn(x)
                y.backward(Tensor(pb.dy[k].astype(pb.dtype), dtype=dt))
            out.setdefault("y", []).append(y.numpy().astype(np.float64))
            out.setdefault("dx", []).append(x.grad.numpy().astype(np.float64))
            if pb.affine:
                out.setdefault("dgamma", []).append(bn.weight.grad.numpy().astype(np.float64))
                out.setdefault("dbeta", []).append(bn.bias.grad.numpy().astype(np.float64))
                bn.weight.grad = bn.bias.grad = None
            if pb.track_running_stats:
                out.setdefault("running_mean", []).append(bn.running_mean.numpy().astype(np.float64))
                out.setdefault("running_var", []).append(bn.running_var.numpy().astype(np.float64))

        if pb.mode == "train":
            for k in range(pb.steps):
                step(k, True)
        else:
            step(0, False)
        res = {k: np.stack(v) for k, v in out.items()}
        if pb.mode == "train":
            with Context(TRAINING=0):
                res["y_eval"] = bn(Tensor(pb.x[-1].astype(pb.dtype), dtype=dt)).numpy().astype(np.float64)
        return res
