"""Template for a new backend: copy this file, fill in the three marked places, and run

    pytest conformance/ --adapter path/to/my_adapter.py:MyBatchNorm

Contract (adapters/protocol.py has the full text):
  * ``supports(problem, device)`` returns None, or a sentence saying why the case cannot
    run (it becomes a skip with that reason; never silently pass a case).
  * ``run(problem, device)`` plays the scenario for ``problem.mode`` and returns a dict
    of NumPy arrays: y, dx (K, *shape); dgamma, dbeta (K, C) if affine; running_mean,
    running_var (K, C) if tracked; y_eval (*shape) for "train".
  * ``problem.momentum`` is the weight f of the NEW batch statistic (PyTorch's form);
    pass 1 - f to an API whose momentum weighs the old value.
  * Raise whatever your backend raises: an exception is recorded as a verdict.
  * ``convention`` names the preset in reference/conventions.toml your backend claims
    to follow (add one there if none fits).
"""
from __future__ import annotations

import numpy as np

from adapters.protocol import Problem


class MyBatchNorm:
    name = "mybackend"            # (1) unique name, shown in results and --adapter filters
    framework = "mybackend"
    convention = "pytorch"        # (2) the preset your backend claims to follow

    def version(self) -> str:
        return "0.0.0"

    def devices(self) -> list[str]:
        return ["cpu"]

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.momentum is None:
            return "no cumulative moving average"
        return None

    def run(self, pb: Problem, device: str) -> dict[str, np.ndarray]:
        # (3) replace this body with calls into your backend. This placeholder raises so
        # that an unfinished adapter can never pass.
        raise NotImplementedError("fill in MyBatchNorm.run with calls into your backend")
