"""The scenario, written once: what "train", "infer", "frozen" and "fresh" mean.

A framework supplies five hooks (benchdnn's driver style: the primitive fills in a fixed set
of functions, one harness drives them); ``play`` runs the case's scenario on them and returns
the protocol's outputs (adapters/protocol.py). Subclass ``Hooks`` and fill in:

  create(pb, device)             -> layer   the layer exactly as the framework's constructor /
                                            initialiser makes it, with the case's conventions
                                            (momentum, eps, affine, tracking, dtypes, axis) and
                                            gamma/beta set; its own initial running statistics
  load_stats(layer, mean, var)   -> layer   supplied running statistics (float arrays in the
                                            parameter dtype's carrier)
  freeze(layer)                  -> layer   the framework's idiomatic freeze (Keras:
                                            trainable=False; PyTorch: requires_grad_(False))
  forward(layer, x, dy, training)-> (Step, layer)
                                            one call in training or inference mode on one batch;
                                            with dy (not None) also the gradients dx, dgamma,
                                            dbeta of sum(y * dy); a layer without running
                                            statistics normalises with the batch's statistics in
                                            inference mode, however the framework spells that
  stats(layer)                   -> (mean, var) the running statistics now

Every hook may return framework arrays; ``to_numpy`` (override for tensors that NumPy cannot
read directly) turns them into float64 arrays. Functional frameworks return a new layer
(state) from load_stats/freeze/forward; stateful ones return the same object.

The scenario (the one definition of each mode):
  train   create; [load_stats if the case supplies starting statistics]; K training-mode
          calls on x[k] with dy[k], recording y, dx, dgamma, dbeta, batch statistics (if the
          API returns them) and the running statistics after each call; then one
          inference-mode call on x[K-1]: y_eval.
  infer   create; load_stats (when tracked); one inference-mode call on x[0] with dy[0];
          the running statistics afterwards (they must be unchanged).
  frozen  create; load_stats; freeze; K training-mode calls; y, dx and the running statistics
          after each call (no parameter gradients: the parameters are frozen).
  fresh   create; one inference-mode call on x[0] with dy[0], before any training step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .protocol import Problem


class CompileLog:
    """Compilations an adapter triggered in this process, for the benchmark (an adapter
    that compiles wraps each compilation in ``timed()``)."""

    def __init__(self):
        self.count, self.seconds = 0, 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds

    def timed(self, fn, *args, **kwargs):
        import time
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.add(time.perf_counter() - t)


    def traced(self, fn, *args, **kwargs):
        """Call a tf.function; a call that traced it anew (and so compiled it, under
        jit_compile) counts as a compilation of its whole duration."""
        import time
        before = fn.experimental_get_tracing_count()
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        if fn.experimental_get_tracing_count() != before:
            self.add(time.perf_counter() - t)
        return out


COMPILES = CompileLog()


@dataclass
class Step:
    """What one call produced (framework arrays or NumPy); None where not computed."""
    y: Any
    dx: Any = None
    dgamma: Any = None
    dbeta: Any = None
    batch_mean: Any = None
    batch_var: Any = None


class Hooks:
    """Base class of adapters that fit the scenario's hooks; ``run`` plays the scenario."""

    capabilities = ("forward", "running_stats", "grad")

    # -- hooks to fill in ---------------------------------------------------------------------
    def create(self, pb: Problem, device: str) -> Any:
        raise NotImplementedError

    def load_stats(self, layer: Any, mean: np.ndarray, var: np.ndarray) -> Any:
        raise NotImplementedError

    def freeze(self, layer: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no freeze: say so in supports()")

    def forward(self, layer: Any, x: np.ndarray, dy: np.ndarray | None, training: bool) -> tuple[Step, Any]:
        raise NotImplementedError

    def stats(self, layer: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def to_numpy(self, a) -> np.ndarray:
        return np.array(a, dtype=np.float64)

    def compile_stats(self) -> tuple[int, float]:
        """(compilations, seconds compiling) so far in this process: what a compiling
        framework (XLA, Inductor) spent; the suite records the difference per case."""
        return COMPILES.count, COMPILES.seconds

    # -- the protocol --------------------------------------------------------------------------
    def run(self, pb: Problem, device: str) -> dict[str, np.ndarray]:
        return play(self, pb, device)


def play(h: Hooks, pb: Problem, device: str) -> dict[str, np.ndarray]:
    """The scenario of ``pb.mode`` on hooks ``h`` (module docstring)."""
    out: dict[str, list] = {}
    grads = "grad" in getattr(h, "capabilities", ("grad",))
    layer = h.create(pb, device)
    supplied = pb.running_mean is not None and pb.track_running_stats and pb.mode != "fresh"
    if supplied:
        layer = h.load_stats(layer, pb.running_mean, pb.running_var)
    if pb.mode == "frozen":
        layer = h.freeze(layer)
    training = pb.mode in ("train", "frozen")
    params = pb.affine and pb.mode != "frozen"

    def keep(name, value):
        if value is not None:
            out.setdefault(name, []).append(h.to_numpy(value))

    for k in range(pb.steps if training else 1):
        step, layer = h.forward(layer, pb.x[k], pb.dy[k] if grads else None, training)
        keep("y", step.y)
        keep("dx", step.dx)
        if params:
            keep("dgamma", step.dgamma)
            keep("dbeta", step.dbeta)
        if pb.mode == "train":
            keep("batch_mean", step.batch_mean)
            keep("batch_var", step.batch_var)
        if pb.track_running_stats:
            mean, var = h.stats(layer)
            keep("running_mean", mean)
            keep("running_var", var)
    res = {k: np.stack(v) for k, v in out.items()}
    if pb.mode == "train":
        step, layer = h.forward(layer, pb.x[pb.steps - 1], None, False)
        res["y_eval"] = h.to_numpy(step.y)
    return res
