"""The executable specification of batch normalisation: float64 NumPy, framework-free.

Public surface:
  batchnorm   forward_train, forward_inference, backward_train, backward_inference,
              batch_stats, unbiased, UndefinedResult
  running     RunningRule, update, trajectory
  conventions Convention, preset, presets (the data in conventions.toml)
"""
from .batchnorm import (UndefinedResult, backward_inference, backward_train, batch_stats, count,
                        forward_inference, forward_train, normalized, reduction_axes, unbiased)
from .conventions import Convention, preset, presets
from .running import RunningRule, fed_variance, step, trajectory, update

__all__ = [
    "UndefinedResult", "backward_inference", "backward_train", "batch_stats", "count", "forward_inference",
    "forward_train", "normalized", "reduction_axes", "unbiased", "Convention", "preset", "presets", "RunningRule",
    "fed_variance", "step", "trajectory", "update",
]
