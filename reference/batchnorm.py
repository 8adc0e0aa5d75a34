"""Batch normalisation, forward and backward, as small pure functions.

Every function takes and returns float64 NumPy arrays and computes internally in
double-double (``reference.dd``), rounding once at the end. ``channel_axis`` selects
the feature axis; statistics are per channel over every other axis.

Sources:
  [IS15] S. Ioffe, C. Szegedy, "Batch Normalization: Accelerating Deep Network
         Training by Reducing Internal Covariate Shift", arXiv:1502.03167, 2015:
         Algorithm 1 (training transform), section 3 (backward pass), section 3.1 and
         Algorithm 2 (inference with population statistics).
  [PT]   PyTorch ``torch.nn.BatchNorm2d`` documentation,
         https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html
"""
from __future__ import annotations

import numpy as np

from .dd import DD, sqrt


class UndefinedResult(ValueError):
    """The reference declines to define a result for this input (see the docstring that raises it)."""


def reduction_axes(ndim: int, channel_axis: int) -> tuple[int, ...]:
    """Every axis except the channel axis [IS15, section 3.2: 'jointly over all the
    locations' of a feature map, and over the mini-batch]."""
    c = channel_axis % ndim
    return tuple(a for a in range(ndim) if a != c)


def _per_channel(v, ndim: int, channel_axis: int):
    """Reshape a per-channel vector so it broadcasts against an input of rank ``ndim``."""
    shape = [1] * ndim
    shape[channel_axis % ndim] = -1
    return v.reshape(shape)


def _channel_sum(v: DD, channel_axis: int) -> DD:
    c = channel_axis % v.hi.ndim
    hi = np.moveaxis(v.hi, c, 0).reshape(v.hi.shape[c], -1)
    lo = np.moveaxis(v.lo, c, 0).reshape(v.hi.shape[c], -1)
    return DD(hi, lo).sum(axis=1)


def count(x: np.ndarray, channel_axis: int) -> int:
    """n: the number of values reduced per channel."""
    return int(np.prod([x.shape[a] for a in reduction_axes(x.ndim, channel_axis)], dtype=np.int64))


# -- statistics ------------------------------------------------------------------------

def _batch_stats_dd(x: np.ndarray, channel_axis: int) -> tuple[DD, DD]:
    n = count(x, channel_axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = _channel_sum(DD(x), channel_axis) / float(n)
        d = DD(x) - _per_channel(mean, x.ndim, channel_axis)
        var = _channel_sum(d * d, channel_axis) / float(n)
    return mean, var


def batch_stats(x: np.ndarray, channel_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel batch mean and biased variance, two-pass [IS15, Algorithm 1]:

        mean_c = (1/n) * sum_i x_ci
        var_c  = (1/n) * sum_i (x_ci - mean_c)^2

    For n = 0 both are NaN (0/0): an empty batch has no statistics. A NaN or Inf in
    channel c makes mean_c and var_c NaN (or Inf) and touches no other channel.
    """
    mean, var = _batch_stats_dd(x, channel_axis)
    return mean.to_float64(), var.to_float64()


def unbiased(var: np.ndarray, n: int) -> np.ndarray:
    """Bessel's correction, var * n / (n - 1) [IS15, Algorithm 2 step 10: Var[x] =
    m/(m-1) * E_B[sigma_B^2]]. Undefined for n <= 1: raises UndefinedResult, because
    the estimator is 0/0 there and frameworks disagree (PyTorch refuses to train, see
    ``torch.nn.functional._verify_batch_size``)."""
    if n <= 1:
        raise UndefinedResult(f"unbiased variance needs n > 1 values per channel, got n = {n}")
    return (DD(var) * float(n) / float(n - 1)).to_float64()


# -- forward ---------------------------------------------------------------------------

def _normalize_dd(x, mean, var, eps, channel_axis) -> DD:
    """x_hat = (x - mean) / sqrt(var + eps) [IS15, Algorithm 1]."""
    m = _per_channel(DD.of(mean), x.ndim, channel_axis)
    v = _per_channel(DD.of(var), x.ndim, channel_axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (DD(x) - m) / sqrt(v + eps)


def _affine(xhat: DD, gamma, beta, channel_axis) -> np.ndarray:
    nd = xhat.hi.ndim
    with np.errstate(invalid="ignore"):
        y = xhat * _per_channel(DD(gamma), nd, channel_axis) + _per_channel(DD(beta), nd, channel_axis)
    return y.to_float64()


def forward_train(x, gamma, beta, eps, channel_axis):
    """Training-mode forward [IS15, Algorithm 1]:

        y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta

    with the batch mean and *biased* batch variance of ``batch_stats``. Returns
    ``(y, mean_B, var_B)``. A constant channel (var_B = 0) gives y = beta there.
    """
    mean, var = _batch_stats_dd(x, channel_axis)
    y = _affine(_normalize_dd(x, mean, var, eps, channel_axis), gamma, beta, channel_axis)
    return y, mean.to_float64(), var.to_float64()


def normalized(x, eps, channel_axis) -> np.ndarray:
    """x_hat = (x - mean_B) / sqrt(var_B + eps) with the batch statistics, each element within
    one float64 ulp of the exact value (computed in double-double): the suite's properties use
    it, so that their own rounding error stays far below the implementations' (a plain float64
    x_hat errs by about u * |x| / sigma, which is large for a small spread at a large mean)."""
    mean, var = _batch_stats_dd(x, channel_axis)
    return _normalize_dd(x, mean, var, eps, channel_axis).to_float64()


def check_inference_variance(running_var, eps) -> None:
    """Inference normalises by sqrt(running_var + eps): where that is negative (a negative
    running variance below -eps) there is no real result, and where it is zero (zero variance
    with eps = 0) the result is a division by zero. The reference refuses both
    (UndefinedResult); NaN and +Inf statistics are values IEEE arithmetic defines (NaN
    propagates within its channel; an infinite variance normalises to 0)."""
    with np.errstate(invalid="ignore"):
        v = np.asarray(running_var, np.float64) + float(eps)
    bad = np.flatnonzero(np.isfinite(v) & (v <= 0))
    if bad.size:
        raise UndefinedResult(f"running variance + eps = {float(v[bad[0]])!r} <= 0 in channel(s) "
                              f"{bad.tolist()[:8]}: no real normalisation")


def forward_inference(x, running_mean, running_var, gamma, beta, eps, channel_axis):
    """Inference-mode forward [IS15, Algorithm 2 step 11]:

        y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta

    An elementwise map: a NaN or Inf in x affects only its own output element. Refuses
    running_var + eps <= 0 (``check_inference_variance``).
    """
    check_inference_variance(running_var, eps)
    return _affine(_normalize_dd(x, running_mean, running_var, eps, channel_axis), gamma, beta, channel_axis)


# -- backward --------------------------------------------------------------------------

def backward_train(dy, x, gamma, eps, channel_axis):
    """Training-mode gradients, flowing through the batch statistics [IS15, section 3]:

        x_hat  = (x - mean_B) / sigma,   sigma = sqrt(var_B + eps)
        dbeta  = sum_i dy_i
        dgamma = sum_i dy_i * x_hat_i
        dx     = gamma / sigma * (dy - dbeta / n - x_hat * dgamma / n)

    (the closed form of IS15's chain of dl/dsigma^2 and dl/dmu). Sums are per channel.
    Returns ``(dx, dgamma, dbeta)``.
    """
    nd = x.ndim
    n = count(x, channel_axis)
    mean, var = _batch_stats_dd(x, channel_axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = sqrt(var + eps)
        xhat = _normalize_dd(x, mean, var, eps, channel_axis)
        g = DD(dy)
        dbeta = _channel_sum(g, channel_axis)
        dgamma = _channel_sum(g * xhat, channel_axis)
        scale = _per_channel(DD(gamma) / sigma, nd, channel_axis)
        dx = scale * (g - _per_channel(dbeta / float(max(n, 1)), nd, channel_axis)
                      - xhat * _per_channel(dgamma / float(max(n, 1)), nd, channel_axis))
    return dx.to_float64(), dgamma.to_float64(), dbeta.to_float64()


def backward_inference(dy, x, running_mean, running_var, gamma, eps, channel_axis):
    """Inference-mode gradients, running statistics held constant:

        dx     = dy * gamma / sqrt(running_var + eps)
        dgamma = sum_i dy_i * x_hat_i,   x_hat = (x - running_mean) / sqrt(running_var + eps)
        dbeta  = sum_i dy_i

    (the derivative of the affine map of [IS15, Algorithm 2 step 11]).
    """
    check_inference_variance(running_var, eps)
    nd = x.ndim
    with np.errstate(invalid="ignore", divide="ignore"):
        xhat = _normalize_dd(x, running_mean, running_var, eps, channel_axis)
        g = DD(dy)
        scale = _per_channel(DD(gamma) / sqrt(DD(running_var) + eps), nd, channel_axis)
        dx = g * scale
        dgamma = _channel_sum(g * xhat, channel_axis)
        dbeta = _channel_sum(g, channel_axis)
    return dx.to_float64(), dgamma.to_float64(), dbeta.to_float64()
