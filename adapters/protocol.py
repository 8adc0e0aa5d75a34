"""The boundary between the suite and a backend: plain data in, NumPy arrays out.

An adapter knows its framework and nothing of tolerances, references or reports.
Everything that crosses the boundary is picklable (a dataclass of numbers, strings
and NumPy arrays), so an adapter can run in another process.

Most adapters subclass ``adapters.scenario.Hooks`` and fill in five framework hooks; the
scenario itself (what "train", "infer", "frozen" and "fresh" mean, which outputs are
recorded when) is written once there. An adapter may instead implement ``run`` itself
(a converted model, a runtime that cannot hold state between calls) and must then play
the same scenario:

  "train"   K = steps training-mode calls on x[0..K-1] from the framework's own initial
            running statistics (or from the supplied ones, when given), each with its
            backward pass for the upstream gradient dy[k]; y, dx, dgamma, dbeta and the
            running statistics after each call. Parameters are not updated. Then one
            inference-mode call on x[K-1]: y_eval.
  "infer"   supplied running statistics; one inference-mode call and backward on x[0]
            with dy[0]; the running statistics afterwards (they must be unchanged).
  "frozen"  supplied running statistics; the framework's idiomatic freeze (Keras:
            trainable=False; PyTorch: requires_grad_(False) on the parameters); K
            training-mode calls; y, dx and the running statistics after each call.
  "fresh"   the layer exactly as the framework creates it, no statistics supplied; one
            inference-mode call and backward on x[0].

Outputs (a dict of float arrays; leave out what the framework cannot produce, and say so
in ``supports`` if that makes the case meaningless; ``vocab.OUTPUTS`` lists them):

  y, dx                      (K, *shape)  K = 1 for "infer" and "fresh"
  dgamma, dbeta              (K, C)       only when affine
  running_mean, running_var  (K, C)       state after each call, when tracked
  y_eval                     (*shape)     "train" only
  batch_mean, batch_var      (K, C)       only if the API returns them (fused kernels)

Inputs are read-only float arrays holding values exactly representable in ``dtype``;
bfloat16 values arrive in float32 arrays (``vocab.DType.carrier``). ``momentum`` is the
weight f of the NEW batch statistic (PyTorch's convention); None means a cumulative
average. An adapter whose API uses the old-value weight d passes d = 1 - f.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from bn_conformance.vocab import CAPABILITIES, OPT_IN_CAPABILITIES, OUTPUT_NAMES, param_dtype  # noqa: F401 -- re-exported


@dataclass
class Problem:
    case_id: str
    mode: str                     # "train" | "infer" | "frozen" | "fresh"
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
    running_mean: np.ndarray | None = None   # (C,) supplied statistics ("infer", "frozen", or train from given)
    running_var: np.ndarray | None = None
    replicas: tuple[int, ...] | None = None  # per-replica batch sizes (synchronised batch norm), or None
    init_train: bool = False                 # "fresh": initialise in training mode where init runs a forward pass

    @property
    def axis(self) -> int:
        return self.channel_axis % len(self.shape)

    @property
    def channels(self) -> int:
        return self.shape[self.axis]

    @property
    def param_dtype(self) -> str:
        """Parameters and running statistics: float32 for 16-bit inputs (mixed precision,
        as frameworks keep them), otherwise the input dtype (``vocab.DType.param``)."""
        return param_dtype(self.dtype)


@dataclass(frozen=True)
class Target:
    """One runnable thing: an adapter variant on a device."""
    adapter: str
    device: str

    @property
    def id(self) -> str:
        return f"{self.adapter}@{self.device}"


@runtime_checkable
class Adapter(Protocol):
    """Required: name, framework, convention, version(), devices(), supports(), run().

    Optional attributes (the suite reads them with these defaults):
      capabilities  subset of ``CAPABILITIES`` + ``OPT_IN_CAPABILITIES``; default
                    ``CAPABILITIES``. An adapter without "grad" (an inference runtime)
                    returns no dx/dgamma/dbeta and the suite does not require them. Only an
                    adapter declaring "replicas" gets replica cases (``Problem.replicas``:
                    the batch split into shards whose statistics it must combine); for the
                    others they skip.
      default       False: opt-in (run with --adapter NAME or --all-adapters); default True
      family        backend family for markers and the report (e.g. "torch"); default the framework
      device_name(device) -> str   a readable name of the device (GPU model), for the report
    """
    name: str           # unique variant name, e.g. "torch.nn"
    framework: str      # distribution name, e.g. "torch"
    convention: str     # preset name in reference/conventions.toml

    def version(self) -> str: ...
    def devices(self) -> list[str]: ...
    def supports(self, problem: Problem, device: str) -> str | None:
        """None if the case can run; otherwise the reason it cannot (becomes a skip)."""
    def run(self, problem: Problem, device: str) -> dict[str, np.ndarray]: ...


OPTIONAL = {"capabilities": CAPABILITIES, "default": True}


@dataclass
class AdapterInfo:
    """What the results file records about an adapter."""
    name: str
    framework: str
    version: str
    convention: str
    devices: list[str] = field(default_factory=list)
    capabilities: tuple[str, ...] = CAPABILITIES
    family: str = ""
    origin: str = "built-in"      # built-in | external spec | entry point
