"""PyTorch: torch.nn.BatchNorm1d/2d/3d (contiguous and channels_last) and F.batch_norm.

Conventions: preset "pytorch" (reference/conventions.toml). The case's momentum f is
PyTorch's own ``momentum`` (new-batch weight); f = None is PyTorch's cumulative average.
16-bit inputs run with float32 parameters and running statistics (mixed precision, as
torch.autocast leaves batch_norm in float32 parameters); outputs come back in the
input dtype. The scenario is adapters/scenario.py's; these are its hooks.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

from .devices import gpus_visible
from .protocol import Problem
from .scenario import Hooks, Step


def _torch():
    import torch
    return torch


class _Base(Hooks):
    framework = "torch"
    convention = "pytorch"
    family = "torch"

    def devices(self) -> list[str]:
        if not gpus_visible():          # no GPU device node: do not import torch to ask
            return ["cpu"]
        return ["cpu"] + (["cuda"] if _torch().cuda.is_available() else [])

    def version(self) -> str:
        return metadata.version("torch")

    def device_name(self, device: str) -> str:
        if device != "cuda":
            return device
        torch = _torch()
        if device == "cuda":
            return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"
        return "cpu"

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.axis != 1:
            return ("PyTorch batch norm normalises axis 1 only (torch.nn.BatchNorm2d docs: input (N, C, H, W)); "
                    "channels-last data is a memory format, covered by the torch.nn.channels_last variant")
        if pb.replicas:
            return ("torch.nn.SyncBatchNorm cannot train on CPU: its forward raises 'SyncBatchNorm expected input "
                    "tensor to be on GPU' (torch/nn/modules/batchnorm.py SyncBatchNorm.forward) and aten::"
                    "batch_norm_stats has no CPU kernel (measured, torch 2.13.0)")
        return None

    def tensor(self, a, pb: Problem, device: str, dtype: str | None = None, grad: bool = False):
        """A copy of a NumPy array as a tensor of the case's dtype (or ``dtype``) on ``device``."""
        torch = _torch()
        t = torch.tensor(np.ascontiguousarray(a), device=device).to(getattr(torch, dtype or pb.dtype))
        t = self.layout(t) if t.dim() == len(pb.shape) else t
        return t.requires_grad_(True) if grad else t

    def layout(self, t):
        return t

    def to_numpy(self, t) -> np.ndarray:
        if isinstance(t, np.ndarray):
            return t.astype(np.float64)
        return t.detach().to("cpu", _torch().float64).numpy()


class NnModule(_Base):
    """torch.nn.BatchNorm{1,2,3}d chosen by rank, as users write it."""

    name = "torch.nn"

    def module(self, pb: Problem, device: str):
        torch = _torch()
        cls = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}[len(pb.shape)]
        m = cls(pb.channels, eps=pb.eps, momentum=pb.momentum, affine=pb.affine,
                track_running_stats=pb.track_running_stats, device=device, dtype=getattr(torch, pb.param_dtype))
        if pb.affine:
            with torch.no_grad():
                m.weight.copy_(torch.tensor(np.asarray(pb.gamma)))
                m.bias.copy_(torch.tensor(np.asarray(pb.beta)))
        return m

    # -- hooks ---------------------------------------------------------------------------------
    def create(self, pb: Problem, device: str):
        return _Layer(self.module(pb, device), pb, device)

    def load_stats(self, layer, mean, var):
        torch = _torch()
        with torch.no_grad():
            layer.m.running_mean.copy_(torch.tensor(np.asarray(mean)))
            layer.m.running_var.copy_(torch.tensor(np.asarray(var)))
        return layer

    def freeze(self, layer):   # what PyTorch users do to freeze a layer: the mode is untouched
        for p in layer.m.parameters():
            p.requires_grad_(False)
        return layer

    def forward(self, layer, x, dy, training):
        torch, m, pb = _torch(), layer.m, layer.pb
        m.train(training)
        if dy is None:
            with torch.no_grad():
                return Step(m(self.tensor(x, pb, layer.device))), layer
        xt = self.tensor(x, pb, layer.device, grad=True)
        y = m(xt)
        y.backward(self.tensor(dy, pb, layer.device))
        step = Step(y, xt.grad)
        if pb.affine and m.weight.requires_grad:
            step.dgamma, step.dbeta = m.weight.grad.clone(), m.bias.grad.clone()
            m.weight.grad = m.bias.grad = None
        return step, layer

    def stats(self, layer):
        return layer.m.running_mean.clone(), layer.m.running_var.clone()


@dataclass
class _Layer:
    m: Any
    pb: Problem
    device: str


class ChannelsLast(NnModule):
    """torch.nn.BatchNorm2d/3d on inputs in channels_last memory format."""

    name = "torch.nn.channels_last"

    def supports(self, pb: Problem, device: str) -> str | None:
        if len(pb.shape) not in (4, 5):
            return "channels_last memory format exists for rank-4 and rank-5 tensors only"
        return super().supports(pb, device)

    def layout(self, t):
        torch = _torch()
        fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        return t.contiguous(memory_format=fmt)


class Strided(NnModule):
    """torch.nn.BatchNorm on non-contiguous inputs: the same values with the batch and last axes'
    strides swapped (a transposed copy viewed back), as slicing, permuting or converting
    column-major NumPy arrays gives users (torch.tensor keeps a NumPy array's strides)."""

    name = "torch.nn.strided"

    def layout(self, t):
        return t.transpose(0, -1).contiguous().transpose(0, -1)


class Functional(_Base):
    """torch.nn.functional.batch_norm with explicit tensors: the layer is the tensors."""

    name = "torch.functional"

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.momentum is None:
            return "F.batch_norm takes a float momentum; the cumulative average (momentum=None) is a module feature"
        if pb.mode == "frozen":
            return "F.batch_norm is stateless: freezing is a property of the nn module"
        return super().supports(pb, device)

    def batch_norm(self, pb: Problem):
        """The callable (x, running_mean, running_var, weight, bias, training, momentum, eps)
        under test; variants (torch.compile) replace it."""
        return _torch().nn.functional.batch_norm

    def create(self, pb: Problem, device: str):
        torch = _torch()
        pdt = pb.param_dtype
        # the module's initial values (reset_running_stats): zeros and ones
        rm = self.tensor(np.zeros(pb.channels), pb, device, pdt) if pb.track_running_stats else None
        rv = self.tensor(np.ones(pb.channels), pb, device, pdt) if pb.track_running_stats else None
        w = self.tensor(pb.gamma, pb, device, pdt, grad=True) if pb.affine else None
        b = self.tensor(pb.beta, pb, device, pdt, grad=True) if pb.affine else None
        return {"rm": rm, "rv": rv, "w": w, "b": b, "pb": pb, "device": device, "bn": self.batch_norm(pb),
                "torch": torch}

    def load_stats(self, layer, mean, var):
        pb, dev = layer["pb"], layer["device"]
        layer["rm"] = self.tensor(mean, pb, dev, pb.param_dtype)
        layer["rv"] = self.tensor(var, pb, dev, pb.param_dtype)
        return layer

    def forward(self, layer, x, dy, training):
        torch, pb, dev = layer["torch"], layer["pb"], layer["device"]
        rm, rv, w, b = layer["rm"], layer["rv"], layer["w"], layer["b"]
        batch_stats = training or rm is None      # no running statistics: batch statistics in every mode
        if dy is None:
            with torch.no_grad():
                return Step(layer["bn"](self.tensor(x, pb, dev), rm, rv, w, b, batch_stats, pb.momentum,
                                        pb.eps)), layer
        xt = self.tensor(x, pb, dev, grad=True)
        y = layer["bn"](xt, rm, rv, w, b, batch_stats, pb.momentum, pb.eps)
        y.backward(self.tensor(dy, pb, dev))
        step = Step(y, xt.grad)
        if w is not None:
            step.dgamma, step.dbeta = w.grad.clone(), b.grad.clone()
            w.grad = b.grad = None
        return step, layer

    def stats(self, layer):
        return layer["rm"].clone(), layer["rv"].clone()


class NativeCuda(NnModule):
    """torch.nn.BatchNorm on CUDA with cuDNN disabled: PyTorch's own CUDA kernels
    (aten/src/ATen/native/cuda/Normalization.cuh, Welford reductions) instead of cuDNN's.
    PyTorch picks cuDNN by itself where it can (Normalization.cpp _select_batch_norm_backend),
    so torch.nn on cuda exercises cuDNN and this variant the native kernels."""

    name = "torch.nn.native_cuda"

    def devices(self) -> list[str]:
        return ["cuda"] if gpus_visible() and _torch().cuda.is_available() else []

    def run(self, pb: Problem, device: str) -> dict[str, np.ndarray]:
        with _torch().backends.cudnn.flags(enabled=False):
            return super().run(pb, device)
