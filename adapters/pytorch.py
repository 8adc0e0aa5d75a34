"""PyTorch: torch.nn.BatchNorm1d/2d/3d (contiguous and channels_last) and F.batch_norm.

Conventions: preset "pytorch" (reference/conventions.toml). The case's momentum f is
PyTorch's own ``momentum`` (new-batch weight); f = None is PyTorch's cumulative average.
16-bit inputs run with float32 parameters and running statistics (mixed precision, as
torch.autocast leaves batch_norm in float32 parameters); outputs come back in the
input dtype.
"""
from __future__ import annotations

import numpy as np

from .protocol import Problem

_DT = {"float16": "float16", "bfloat16": "bfloat16", "float32": "float32", "float64": "float64"}


def _torch():
    import torch
    return torch


def _np(t) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype in (_torch().bfloat16, _torch().float16):
        t = t.float()
    return t.numpy().copy()


class _Base:
    framework = "torch"
    convention = "pytorch"

    def version(self) -> str:
        return _torch().__version__

    def devices(self) -> list[str]:
        torch = _torch()
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    def device_name(self, device: str) -> str:
        torch = _torch()
        if device == "cuda":
            return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"
        return "cpu"

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.axis != 1:
            return ("PyTorch batch norm normalises axis 1 only (torch.nn.BatchNorm2d docs: input (N, C, H, W)); "
                    "channels-last data is a memory format, covered by the torch.nn.channels_last variant")
        return None

    def _tensor(self, a, pb: Problem, device: str, grad=False):
        torch = _torch()
        t = torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=getattr(torch, _DT[pb.dtype]))
        t = self._layout(t)
        return t.requires_grad_(grad) if grad else t

    def _layout(self, t):
        return t


class NnModule(_Base):
    """torch.nn.BatchNorm{1,2,3}d chosen by rank, as users write it."""

    name = "torch.nn"

    def _module(self, pb: Problem, device: str):
        torch = _torch()
        cls = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}[len(pb.shape)]
        m = cls(pb.channels, eps=pb.eps, momentum=pb.momentum, affine=pb.affine,
                track_running_stats=pb.track_running_stats, device=device, dtype=getattr(torch, pb.param_dtype))
        if pb.affine:
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(pb.gamma))
                m.bias.copy_(torch.from_numpy(pb.beta))
        if pb.running_mean is not None and pb.track_running_stats:
            with torch.no_grad():
                m.running_mean.copy_(torch.from_numpy(pb.running_mean))
                m.running_var.copy_(torch.from_numpy(pb.running_var))
        return m

    def run(self, pb: Problem, device: str) -> dict[str, np.ndarray]:
        torch = _torch()
        m = self._module(pb, device)
        out: dict[str, list] = {}

        def record(y, x, stats=True):
            out.setdefault("y", []).append(_np(y))
            out.setdefault("dx", []).append(_np(x.grad))
            if pb.affine and m.weight.requires_grad:
                out.setdefault("dgamma", []).append(_np(m.weight.grad))
                out.setdefault("dbeta", []).append(_np(m.bias.grad))
                m.weight.grad = m.bias.grad = None
            if stats and pb.track_running_stats:
                out.setdefault("running_mean", []).append(_np(m.running_mean))
                out.setdefault("running_var", []).append(_np(m.running_var))

        def step(k):
            x = self._tensor(pb.x[k], pb, device, grad=True)
            y = m(x)
            y.backward(self._tensor(pb.dy[k], pb, device))
            return y, x

        if pb.mode == "train":
            m.train()
            for k in range(pb.steps):
                record(*step(k))
            m.eval()
            with torch.no_grad():
                y_eval = _np(m(self._tensor(pb.x[pb.steps - 1], pb, device)))
        elif pb.mode == "infer":
            m.eval()
            record(*step(0))
        else:  # frozen: what PyTorch users do to freeze a layer
            for p in m.parameters():
                p.requires_grad_(False)
            m.train()
            for k in range(pb.steps):
                record(*step(k))
        res = {k: np.stack(v) for k, v in out.items()}
        if pb.mode == "train":
            res["y_eval"] = y_eval
        return res


class ChannelsLast(NnModule):
    """torch.nn.BatchNorm2d/3d on inputs in channels_last memory format."""

    name = "torch.nn.channels_last"

    def supports(self, pb: Problem, device: str) -> str | None:
        if len(pb.shape) not in (4, 5):
            return "channels_last memory format exists for rank-4 and rank-5 tensors only"
        return super().supports(pb, device)

    def _layout(self, t):
        torch = _torch()
        fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
        return t.contiguous(memory_format=fmt)


class Functional(_Base):
    """torch.nn.functional.batch_norm with explicit tensors."""

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

    def run(self, pb: Problem, device: str) -> dict[str, np.ndarray]:
        torch = _torch()
        bn = self.batch_norm(pb)
        pdt = getattr(torch, pb.param_dtype)
        if pb.track_running_stats:
            if pb.running_mean is not None:
                rm = torch.tensor(pb.running_mean, dtype=pdt, device=device)
                rv = torch.tensor(pb.running_var, dtype=pdt, device=device)
            else:  # the module's initial values (reset_running_stats)
                rm = torch.zeros(pb.channels, dtype=pdt, device=device)
                rv = torch.ones(pb.channels, dtype=pdt, device=device)
        else:
            rm = rv = None
        w = torch.tensor(pb.gamma, dtype=pdt, device=device, requires_grad=True) if pb.affine else None
        b = torch.tensor(pb.beta, dtype=pdt, device=device, requires_grad=True) if pb.affine else None
        training = pb.mode == "train" or not pb.track_running_stats
        out: dict[str, list] = {}
        steps = pb.steps if pb.mode == "train" else 1
        for k in range(steps):
            x = self._tensor(pb.x[k], pb, device, grad=True)
            y = bn(x, rm, rv, w, b, training, pb.momentum, pb.eps)
            y.backward(self._tensor(pb.dy[k], pb, device))
            out.setdefault("y", []).append(_np(y))
            out.setdefault("dx", []).append(_np(x.grad))
            if pb.affine:
                out.setdefault("dgamma", []).append(_np(w.grad))
                out.setdefault("dbeta", []).append(_np(b.grad))
                w.grad = b.grad = None
            if rm is not None:
                out.setdefault("running_mean", []).append(_np(rm))
                out.setdefault("running_var", []).append(_np(rv))
        res = {k: np.stack(v) for k, v in out.items()}
        if pb.mode == "train":
            with torch.no_grad():
                x = self._tensor(pb.x[pb.steps - 1], pb, device)
                res["y_eval"] = _np(bn(x, rm, rv, w, b, rm is None, 0.0, pb.eps))
        return res


class NativeCuda(NnModule):
    """torch.nn.BatchNorm on CUDA with cuDNN disabled: PyTorch's own CUDA kernels
    (aten/src/ATen/native/cuda/Normalization.cuh, Welford reductions) instead of cuDNN's.
    PyTorch picks cuDNN by itself where it can (Normalization.cpp _select_batch_norm_backend),
    so torch.nn on cuda exercises cuDNN and this variant the native kernels."""

    name = "torch.nn.native_cuda"

    def devices(self) -> list[str]:
        return ["cuda"] if _torch().cuda.is_available() else []

    def run(self, pb: Problem, device: str) -> dict[str, np.ndarray]:
        with _torch().backends.cudnn.flags(enabled=False):
            return super().run(pb, device)


def adapters():
    _torch()  # ImportError here means the framework is not installed
    return [NnModule(), ChannelsLast(), Functional(), NativeCuda()]
