"""Draft of a future adapter variant "torch.nn.strided": torch.nn.BatchNormXd on NON-CONTIGUOUS
input views. Every array (x and dy) is handed to torch in Fortran (column-major) order, which is
what ``torch.tensor(np.asfortranarray(a))`` / ``torch.from_numpy`` of a Fortran array produce;
``.to(dtype)`` keeps the strides (preserve_format). For rank >= 2 with N > 1 and C > 1 such a
tensor is neither contiguous nor channels-last, so ATen takes its generic (non-contiguous) CPU
paths. Use: --adapter conformance/findings/probes/torch_onnx/strided_adapter.py:Strided"""
from __future__ import annotations

import numpy as np

from bn_conformance.adapters.pytorch import NnModule, _torch


class Strided(NnModule):
    name = "torch.nn.strided"

    def tensor(self, a, pb, device, dtype=None, grad=False):
        torch = _torch()
        a = np.asarray(a)
        src = np.asfortranarray(a) if a.ndim == len(pb.shape) else np.ascontiguousarray(a)
        t = torch.tensor(src, device=device) if src.ndim == 0 else torch.from_numpy(src.copy(order="K")).to(device)
        t = t.to(getattr(torch, dtype or pb.dtype))
        return t.requires_grad_(True) if grad else t
