"""Running (moving) statistics: one update rule, with the conventions as parameters.

Every framework's rule is an exponential moving average written in one of two ways
(SEMANTICS notation ``running_new = a * running_old + b * batch_stat``):

  new-weight momentum f  (PyTorch ``momentum``):      a = 1 - f,  b = f
      https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html (note on momentum)
  old-weight momentum d  (Keras, TF moving averages,  a = d,      b = 1 - d
      Flax, ONNX ``momentum``/``decay``):
      https://www.tensorflow.org/api_docs/python/tf/keras/layers/BatchNormalization
      https://onnx.ai/onnx/operators/onnx__BatchNormalization.html

The reference uses one canonical parameter, the weight ``w_t`` of the new batch
statistic at step t, and the weight schedule decides the rest:

  "ema"        w_t = f                        (both forms above, with f = 1 - d)
  "cumulative" w_t = 1 / t                    (PyTorch ``momentum=None``: a cumulative
                                               moving average; same doc page)
  "debiased"   w_t = f / (1 - (1 - f)^t)      (Haiku ``ExponentialMovingAverage`` with a
                                               zero-initialised hidden state divided by
                                               1 - d^t, haiku/_src/moving_averages.py; the
                                               identity is derived in ``weights``)

and the running variance is fed with the biased batch variance or with the unbiased
one (``estimator``). A step whose batch is empty (n = 0) carries no information and
leaves the running statistics unchanged (the reference's choice; PyTorch does the
same, aten/src/ATen/native/Normalization.cpp, the ``numel() == 0`` branch of
``_batch_norm_impl_index``).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .batchnorm import UndefinedResult, _batch_stats_dd, count, unbiased
from .dd import DD

SCHEDULES = ("ema", "cumulative", "debiased")
ESTIMATORS = ("biased", "unbiased")


@dataclass(frozen=True)
class RunningRule:
    """How running statistics evolve: the weight schedule of the batch statistic, the
    new-weight momentum ``f`` (ignored by "cumulative"), and the variance estimator."""

    schedule: str = "ema"
    momentum: float = 0.1
    estimator: str = "unbiased"

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")

    def weight(self, t: int) -> float:
        """w_t, the weight of the batch statistic at step t = 1, 2, ...

        Debiased: with hidden state h_0 = 0, h_t = d h_{t-1} + (1-d) s_t and exposed
        value a_t = h_t / (1 - d^t), substituting h_{t-1} = a_{t-1}(1 - d^{t-1}) gives
        a_t = (1 - w_t) a_{t-1} + w_t s_t with w_t = (1-d)/(1-d^t): an EMA whose first
        weight is 1, so the initial value never shows.
        """
        if self.schedule == "cumulative":
            return 1.0 / t
        if self.schedule == "debiased":  # exact rational arithmetic, one rounding
            f = Fraction(self.momentum)
            return float(f / (1 - (1 - f) ** t))
        return self.momentum

    def resumed(self) -> "RunningRule":
        """The rule when training resumes from statistics a long-trained layer saved (a loaded
        checkpoint; the conformance suite's supplied statistics): the debiased weight w_t tends
        to f as t grows ((1 - f)^t -> 0), so the schedule is the plain EMA. The other schedules
        are unchanged (cumulative counts from the resumed step, as PyTorch's
        ``num_batches_tracked`` does when set to 0)."""
        return RunningRule("ema", self.momentum, self.estimator) if self.schedule == "debiased" else self


def update(old, stat, w: float) -> np.ndarray:
    """running_new = (1 - w) * running_old + w * batch_stat, rounded once to float64
    (``stat`` may be a double-double value, so the batch statistic is not rounded first)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return (DD.of(old) * (DD(1.0) - w) + DD.of(stat) * w).to_float64()


def fed_variance(var: np.ndarray, n: int, estimator: str) -> np.ndarray:
    """The batch variance that enters the running variance: biased as computed, or
    unbiased = var * n/(n-1) (raises ``UndefinedResult`` for n <= 1)."""
    return unbiased(var, n) if estimator == "unbiased" else var


def step(rm, rv, x: np.ndarray, channel_axis: int, rule: RunningRule, t: int):
    """Running statistics after the t-th (1-based) non-empty batch ``x``: the batch
    mean and the fed variance enter the update unrounded. Raises ``UndefinedResult``
    for an unbiased estimator with n = 1."""
    n = count(x, channel_axis)
    mean, var = _batch_stats_dd(x, channel_axis)
    if rule.estimator == "unbiased":
        if n <= 1:
            raise UndefinedResult(f"unbiased variance needs n > 1 values per channel, got n = {n}")
        with np.errstate(invalid="ignore", over="ignore"):
            var = var * float(n) / float(n - 1)
    w = rule.weight(t)
    if w == 1.0 and rule.schedule == "debiased":
        # the zero-initialised hidden state: the old value is never read, so an initial NaN or
        # Inf does not show (0 * Inf would); cumulative and ema keep IEEE arithmetic, as the
        # frameworks' ``(1 - w) * old + w * stat`` does
        return update(np.zeros_like(rm), mean, w), update(np.zeros_like(rv), var, w)
    return update(rm, mean, w), update(rv, var, w)


def trajectory(batches, channel_axis: int, rule: RunningRule, mean0, var0):
    """Running mean and variance after each of the K steps over ``batches`` (K arrays).

    Returns two arrays of shape (K, C).
    """
    rm, rv = np.asarray(mean0, np.float64), np.asarray(var0, np.float64)
    means, variances = [], []
    t = 0
    for x in batches:
        if count(x, channel_axis) > 0:
            t += 1
            rm, rv = step(rm, rv, x, channel_axis, rule, t)
        means.append(rm)
        variances.append(rv)
    return np.stack(means), np.stack(variances)
