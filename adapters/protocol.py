"""The boundary between the suite and a backend: plain data in, NumPy arrays out.

An adapter knows its framework and nothing of tolerances, references or reports.
Everything that crosses the boundary is picklable (a dataclass of numbers, strings
and NumPy arrays), so an adapter can run in another process.

The scenario an adapter plays for a ``Problem`` depends on ``mode``:

  "train"   K = steps training steps on x[0..K-1], starting from the framework's own
            initial running statistics. At each step: forward in training mode,
            backward with upstream gradient dy[k]; record y, dx, dgamma, dbeta and the
            running statistics after the step. Parameters are not updated. Then one
            inference-mode forward on x[K-1]: y_eval.
  "infer"   set running statistics to running_mean/running_var; one inference-mode
            forward and backward on x[0] with dy[0]; record y, dx, dgamma, dbeta and the
            running statistics afterwards (they must be unchanged).
  "frozen"  set running statistics as in "infer"; freeze the layer the way the
            framework's users do (Keras: trainable=False; PyTorch: requires_grad_(False)
            on the parameters); then K = steps training-mode calls on x[k] with dy[k];
            record y, dx and the running statistics after each call.

Outputs (a dict; leave out what the framework cannot produce, and say so in
``supports`` if that makes the case meaningless):

  y, dx                  (K, *shape)  K = 1 for "infer"
  dgamma, dbeta          (K, C)       only when affine
  running_mean, running_var  (K, C)   state after each step, when tracked
  y_eval                 (*shape)     "train" only
  batch_mean, batch_var  (K, C)       only if the API returns them (fused kernels)

Inputs are float arrays holding values exactly representable in ``dtype``; bfloat16
values arrive in float32 arrays. ``momentum`` is the weight f of the NEW batch
statistic (PyTorch's convention); None means a cumulative average. An adapter whose
API uses the old-value weight d passes d = 1 - f.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

OUTPUT_NAMES = ("y", "dx", "dgamma", "dbeta", "running_mean", "running_var", "y_eval", "batch_mean", "batch_var")


@dataclass
class Problem:
    case_id: str
    mode: str                     # "train" | "infer" | "frozen"
    dtype: str                    # "float16" | "bfloat16" | "float32" | "float64"
    layout: str                   # e.g. "nchw", "nhwc"; the channel axis is channel_axis
    shape: tuple[int, ...]
    channel_axis: int             # 1 or -1 (as a non-negative index: see ``axis``)
    momentum: float | None        # new-batch weight f; None = cumulative average
    eps: float
    affine: bool
    track_running_stats: bool
    steps: int
    x: np.ndarray                 # (K, *shape)
    dy: np.ndarray                # (K, *shape)
    gamma: np.ndarray             # (C,)
    beta: np.ndarray              # (C,)
    running_mean: np.ndarray | None = None   # (C,) given for "infer"/"frozen"
    running_var: np.ndarray | None = None

    @property
    def axis(self) -> int:
        return self.channel_axis % len(self.shape)

    @property
    def channels(self) -> int:
        return self.shape[self.axis]

    @property
    def param_dtype(self) -> str:
        """Parameters and running statistics: float32 for 16-bit inputs (mixed precision,
        as frameworks keep them), otherwise the input dtype."""
        return "float32" if self.dtype in ("float16", "bfloat16") else self.dtype


@dataclass(frozen=True)
class Target:
    """One runnable thing: an adapter variant on a device."""
    adapter: str
    device: str

    @property
    def id(self) -> str:
        return f"{self.adapter}@{self.device}"


CAPABILITIES = ("forward", "running_stats", "grad")


@runtime_checkable
class Adapter(Protocol):
    name: str           # unique variant name, e.g. "torch.nn"
    framework: str      # distribution name, e.g. "torch"
    convention: str     # preset name in reference/conventions.toml
    # Optional: ``capabilities``, a subset of CAPABILITIES (default: all). An adapter
    # without "grad" (an inference runtime) returns no dx/dgamma/dbeta, and the suite
    # does not require them; results say which checks ran.

    def version(self) -> str: ...
    def devices(self) -> list[str]: ...
    def supports(self, problem: Problem, device: str) -> str | None:
        """None if the case can run; otherwise the reason it cannot (becomes a skip)."""
    def run(self, problem: Problem, device: str) -> dict[str, np.ndarray]: ...


@dataclass
class AdapterInfo:
    """What the results file records about an adapter."""
    name: str
    framework: str
    version: str
    convention: str
    devices: list[str] = field(default_factory=list)


def scenario(pb: Problem, record, evaluate):
    """Play ``pb.mode``'s scenario (module docstring): ``record(k, training)`` makes and
    records one call on x[k]; ``evaluate(k)`` returns the inference output on x[k]. Returns
    y_eval for "train", else None."""
    if pb.mode == "infer":
        record(0, False)
        return None
    for k in range(pb.steps):          # "train", or "frozen" (frozen layer, training-mode calls)
        record(k, True)
    return evaluate(pb.steps - 1) if pb.mode == "train" else None
