"""Template for a new backend: copy this file, fill in the marked places, and run

    pytest conformance/ --adapter path/to/my_adapter.py:MyBatchNorm

The scenario (what "train", "infer", "frozen" and "fresh" mean, and which outputs are
recorded when) is written once, in bn_conformance.adapters.scenario; an adapter supplies
five hooks for its framework:

  create(pb, device)              the layer as your framework's constructor makes it, with the
                                  case's momentum, eps, affine and tracking, gamma/beta set
  load_stats(layer, mean, var)    supplied running statistics
  freeze(layer)                   your framework's idiomatic freeze (or say so in supports())
  forward(layer, x, dy, training) one call in training or inference mode; with dy, also the
                                  gradients dx, dgamma, dbeta of sum(y * dy); returns (Step, layer)
  stats(layer)                    (running_mean, running_var) now

Conventions: ``pb.momentum`` is the weight f of the NEW batch statistic (PyTorch's form;
pass 1 - f to an API whose momentum weighs the old value); ``None`` is a cumulative average.
``supports(pb, device)`` returns None, or a sentence saying why the case cannot run (a skip
with that reason; never silently pass a case). Raise whatever your backend raises: an
exception is recorded as a verdict. ``convention`` names the preset in
reference/conventions.toml your backend claims to follow (add one there if none fits).
A runtime that cannot fit the hooks may implement ``run(pb, device)`` instead
(adapters/protocol.py describes the outputs). An inference-only runtime sets
``capabilities = ("forward", "running_stats")`` and returns no gradients. A synchronised
batch norm adds "replicas" to its capabilities and then gets the replica cases
(``pb.replicas``: the shard sizes whose statistics it must combine); without it they skip.
"""
from __future__ import annotations

import numpy as np

from bn_conformance.adapters import Hooks, Problem, Step


class MyBatchNorm(Hooks):
    name = "mybackend"            # (1) unique name, shown in results and --adapter filters
    framework = "mybackend"       #     the distribution whose version is reported
    convention = "pytorch"        # (2) the preset your backend claims to follow

    def version(self) -> str:
        return "0.0.0"

    def devices(self) -> list[str]:
        return ["cpu"]

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.momentum is None:
            return "no cumulative moving average"
        return None

    # (3) the hooks: replace these bodies with calls into your backend. They raise so that an
    # unfinished adapter can never pass.
    def create(self, pb: Problem, device: str):
        raise NotImplementedError("fill in MyBatchNorm.create: build the layer")

    def load_stats(self, layer, mean: np.ndarray, var: np.ndarray):
        raise NotImplementedError("fill in MyBatchNorm.load_stats")

    def freeze(self, layer):
        raise NotImplementedError("fill in MyBatchNorm.freeze, or skip 'frozen' cases in supports()")

    def forward(self, layer, x: np.ndarray, dy: np.ndarray | None, training: bool) -> tuple[Step, object]:
        raise NotImplementedError("fill in MyBatchNorm.forward: one call, and gradients when dy is given")

    def stats(self, layer):
        raise NotImplementedError("fill in MyBatchNorm.stats: (running_mean, running_var)")
