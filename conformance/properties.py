"""Checks on an implementation's own outputs that hold whatever the reference computes.

  grad_sum_zero     training mode: per channel, sum_i dx_i = 0 (dx is orthogonal to the
                    constant vector because the batch mean is subtracted) [IS15, section 3]
  grad_orthogonal   training mode: per channel, sum_i dx_i x_hat_i =
                    (gamma / sigma) * (sum_i dy_i x_hat_i) * eps / (var + eps): the variance
                    normalisation removes the x_hat direction exactly when eps = 0, and
                    sum_i x_hat_i^2 = n var / (var + eps) leaves this remainder otherwise
  converge          K steps on one fixed batch: inference output equals training output
                    once running statistics converge, exactly with a biased estimator, or
                    scaled by sqrt((var+eps)/(var*n/(n-1)+eps)) with an unbiased one
  isolation         a NaN or Inf in channel 0 leaves every other channel finite

Bounds are sums of the per-element tolerances of ``conformance.tolerance``: if every
element is within its tolerance of an exact value for which the identity holds, the
identity holds up to that sum. To that the bounds add the error of what the suite itself
computes here in float64: x_hat comes from the reference (within one ulp,
``reference.normalized``), and a per-channel sum of n products errs by at most
g(n) * u64 * sum |terms| (the policy's reduction bound, tolerance.growth).
"""
from __future__ import annotations

import numpy as np

from .compare import Check, bounded
from .expected import Expected
from .tolerance import growth

U64 = 2.0 ** -53


def _per_channel_sum(a, ax):
    return np.moveaxis(a, ax, -1).reshape(-1, a.shape[ax]).sum(axis=0)


def grad_identities(out: dict, exp: Expected, ax: int, gamma: np.ndarray, eps: float) -> list[Check]:
    if "dx" not in out or "xhat" not in exp.aux:
        return []
    checks = []
    dx = np.asarray(out["dx"], np.float64)
    tol = exp.tol["dx"]
    sums, ortho, b_sum, b_ortho = [], [], [], []
    for k, xhat in enumerate(exp.aux["xhat"]):
        finite = np.isfinite(_per_channel_sum(xhat, ax))
        xh = np.nan_to_num(xhat)
        n = xh.size // max(xh.shape[ax], 1) if xh.shape[ax] else 0
        g = growth(n) * U64                          # the suite's own float64 sums
        sigma = np.nan_to_num(exp.aux["sigma"][k], nan=1.0)
        dyx = _per_channel_sum(exp.aux["dy"][k] * xh, ax)
        remainder = (gamma.astype(np.float64) / sigma) * dyx * eps / (sigma * sigma)
        own_rem = g * np.abs(gamma.astype(np.float64) / sigma) * _per_channel_sum(np.abs(exp.aux["dy"][k] * xh), ax) \
            * eps / (sigma * sigma) + 8 * U64 * np.abs(remainder)
        dxk = np.nan_to_num(dx[k])
        sums.append(np.where(finite, _per_channel_sum(dx[k], ax), 0.0))
        ortho.append(np.where(finite, _per_channel_sum(dx[k] * xh, ax) - remainder, 0.0))
        b_sum.append(np.where(finite, _per_channel_sum(tol[k], ax) + g * _per_channel_sum(np.abs(dxk), ax), 1.0))
        b_ortho.append(np.where(finite, _per_channel_sum(tol[k] * np.abs(xh), ax)
                                + g * _per_channel_sum(np.abs(dxk * xh), ax) + own_rem, 1.0))
    checks.append(bounded("grad_sum_zero", np.array(sums), np.array(b_sum), "per-channel sum of dx"))
    checks.append(bounded("grad_orthogonal", np.array(ortho), np.array(b_ortho), "per-channel sum of dx * x_hat"))
    return checks


def convergence(out: dict, exp: Expected, beta: np.ndarray, var: np.ndarray, eps: float, n: int, ax: int) -> Check:
    """y_eval against the prediction from the last training output."""
    f = n / (n - 1) if exp.stat_estimator == "unbiased" else 1.0
    ratio = np.sqrt((var + eps) / (var * f + eps))
    shape = [1] * exp.values["y_eval"].ndim
    shape[ax] = -1
    ratio, beta = ratio.reshape(shape), beta.astype(np.float64).reshape(shape)

    def predict(y_last):
        return beta + (np.asarray(y_last, np.float64) - beta) * ratio

    resid = np.abs(exp.values["y_eval"] - predict(exp.values["y"][-1]))  # not-yet-converged part
    bound = exp.tol["y_eval"] + exp.tol["y"][-1] * ratio + resid
    gap = np.asarray(out["y_eval"], np.float64) - predict(out["y"][-1])
    what = "inference output minus the prediction from the training output" + (
        " (unbiased estimator: scaled by sqrt((var+eps)/(var*n/(n-1)+eps)))" if f != 1.0 else " (biased: equal)")
    return bounded("converge", gap, bound, what)


def isolation(out: dict, ax: int) -> Check:
    bad = []
    for name in ("y", "dx"):
        if name in out:
            a = np.moveaxis(np.asarray(out[name], np.float64), ax + 1, 0)[1:]
            bad.append(int((~np.isfinite(a)).sum()))
    n_bad = sum(bad)
    return Check("isolation", "property", "pass" if n_bad == 0 else "fail", max_abs=float(n_bad),
                 detail="" if n_bad == 0 else f"{n_bad} non-finite value(s) outside channel 0 (y, dx)")
