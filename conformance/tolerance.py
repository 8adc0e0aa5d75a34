"""The tolerance policy: one place, derived from rounding-error analysis, no per-framework factors.

Notation, per case and per channel c:
  u_w   unit roundoff of the working precision. Statistics of 16-bit inputs are computed
        in float32 (the policy assumes what PyTorch's opmath_type, cuDNN and Keras do);
        so u_w = 2^-24 for float16/bfloat16/float32 inputs and 2^-53 for float64.
  u_o   unit roundoff of the output dtype (float16 2^-11, bfloat16 2^-8, float32 2^-24,
        float64 2^-53); u_s the same for the statistics/parameter dtype.
  n     values reduced per channel.
  sigma_c = sqrt(var_c + eps), the normalising scale.
  kappa_c = mean_i |x_ci| / sigma_c, the conditioning of the channel: how large the
        data are relative to the scale the output resolves. Normal data: kappa ~ 1;
        a mean offset R times the spread: kappa ~ R.

1. Reductions. A sum of n terms in precision u has error at most about
   lambda * sqrt(n) * u * sum|terms| with probability >= 1 - 2 exp(-lambda^2 / 2)
   (Higham & Mary, "A New Approach to Probabilistic Rounding Error Analysis", SIAM J.
   Sci. Comput. 41(5), 2019, Theorem 2.4); the deterministic worst case n * u is far
   too pessimistic for pairwise, blocked or Welford reductions. LAMBDA = 6 makes a
   spurious failure of one reduction less likely than 3e-8. The elementwise path adds
   a fixed number of roundings (subtract, square, divide, sqrt, multiply, add, casts):
   C0 = 8. Together: g(n) = C0 + LAMBDA * sqrt(n).

2. Statistics. The computed mean has absolute error <= u_w g(n) mean|x| = u_w g(n) kappa
   sigma. Define the channel's relative error budget

       e_c = u_w * g(n) * (1 + kappa_c).

   |d mean| <= e_c sigma. A stable variance (two-pass or Welford) has error
   <= 2 e_c sigma^2 + (e_c sigma)^2: the first-order term bounds a deviation error that
   is relative e_c per term, the second the shared mean error, which enters squared
   (sum_i (d_i + delta)^2 = sum d_i^2 + n delta^2 since sum d_i = 0). A one-pass
   variance E[x^2] - E[x]^2 has error ~ u_w kappa^2 sigma^2 and fails this bound as
   soon as kappa >> LAMBDA sqrt(n): it is reported, not excused.

3. Training output y = gamma x_hat + beta. x_hat errs by <= e_c (1 + |x_hat|) (mean error
   over sigma, plus the relative error of 1/sigma times x_hat). The result is then
   rounded to the output dtype at most twice (after normalising, after the affine map):
   2 u_o (|gamma x_hat| + |beta|).

4. Inference output. No reduction: x - running_mean errs by u_w (|x| + |rm|), and a
   handful of roundings: C0 u_w (|x| + |rm|) / sigma_r + C0 u_w |x_hat| per unit gamma,
   plus the output roundings of 3.

5. Gradients (training). dx = gamma/sigma (dy - mean(dy) - x_hat mean(dy x_hat)): each
   term inherits e_c relative error, and the two means are reductions:
       tol = |gamma|/sigma * e_c * (|dy| + 2 (1 + |x_hat|) (mean|dy| + mean|dy x_hat|)) + 2 u_o |dx|
   dgamma = sum dy x_hat: e_c sum |dy| (1 + |x_hat|) + u_w g(n) sum |dy x_hat| + u_s |dgamma|.
   dbeta  = sum dy:       u_w g(n) sum |dy| + u_s |dbeta|.
   Inference: dx = dy gamma / sigma_r, elementwise: C0 u_w |dx| + 2 u_o |dx|; dgamma as
   above with the inference x_hat and the error of 4.

6. Running statistics r_t = (1 - w_t) r_{t-1} + w_t s_t propagate: tol_t =
   |1 - w_t| tol_{t-1} + |w_t| tol(s_t) + the update's own roundings (running_tol: every
   algebraically equivalent form of the update, within its roundings).
   An unbiased variance multiplies the variance tolerance by n/(n-1).

7. Floors: every tolerance gets C0 * (smallest normal of its dtype), so flushing
   subnormals to zero is allowed.

8. The exact tier ("exact" distribution): batch mean and biased variance are exactly
   representable and every partial sum of a reasonable algorithm is exact, so the batch
   statistics get zero tolerance and an unbiased one two roundings (n/(n-1) may itself be
   rounded); a running-statistics update adds the roundings of 6, which are zero for the
   (1 - w) r + w s form with w = 1 but not for the equivalent r + w (s - r).

9. Degenerate inputs: a channel with zero variance (every value c) in training, or inputs
   equal to the running mean with zero running variance in inference. The exact output is
   beta at every magnitude of c, and the conditioning kappa = |c| / sqrt(eps) of 2 says
   nothing about what an algorithm may do there. What a stable algorithm guarantees: its
   mean of n copies of c errs by at most u_w g(n) |c|; the deviations x_i - mean are then
   all the same value d, computed exactly (Sterbenz), and its variance is d^2 up to
   rounding, so |x_hat| = |d| / sqrt(d^2 + eps) <= min(1, u_w g(n) |c| / sqrt(eps)): that
   bound replaces the budget e_c in the output and gradient tolerances of the channel
   (``degenerate_budget``). A one-pass variance clamped at zero gives |x_hat| = |d|/sqrt(eps),
   unbounded, and is reported. In inference x - running_mean = 0 exactly, so y = beta
   up to the output rounding alone: a kernel that folds inference into x * a + b (with
   b = beta - mean * a) errs by about u |x| |gamma| / sqrt(eps) there and is reported.

10. Overflow: a reference value beyond the output dtype's range is compared as the infinity
   that rounding it to that dtype gives (IEEE round to nearest), so a float32 running
   variance of 2^140 is expected to be +Inf in float32.

Non-finite expected values must be matched exactly (NaN by NaN, +-Inf by the same Inf).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAMBDA = 6.0
C0 = 8.0

_UNIT = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float32": 2.0 ** -24, "float64": 2.0 ** -53}
_TINY = {"float16": 2.0 ** -14, "bfloat16": 2.0 ** -126, "float32": 2.0 ** -126, "float64": 2.0 ** -1022}


def unit_roundoff(dtype: str) -> float:
    return _UNIT[dtype]


@dataclass(frozen=True)
class Precision:
    u_w: float
    u_o: float
    u_s: float
    floor_o: float
    floor_s: float

    @staticmethod
    def of(dtype: str) -> "Precision":
        stat = "float32" if dtype in ("float16", "bfloat16") else dtype
        return Precision(u_w=_UNIT[stat], u_o=_UNIT[dtype], u_s=_UNIT[stat],
                         floor_o=C0 * _TINY[dtype], floor_s=C0 * _TINY[stat])


def growth(n: int) -> float:
    """g(n) = C0 + LAMBDA sqrt(n)."""
    return C0 + LAMBDA * float(np.sqrt(max(n, 1)))


def budget(p: Precision, n: int, kappa: np.ndarray) -> np.ndarray:
    """e_c = u_w g(n) (1 + kappa_c)."""
    return p.u_w * growth(n) * (1.0 + kappa)


def degenerate_budget(p: Precision, n: int, magnitude, eps: float):
    """|x_hat| bound of a stable algorithm on a constant channel of values of |c| = magnitude (9)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        b = p.u_w * growth(n) * np.asarray(magnitude, np.float64) / np.sqrt(eps)
    return np.minimum(1.0, np.where(np.isnan(b), 1.0, b))


def mean_tol(p: Precision, e, sigma, mean):
    return e * sigma + p.u_s * np.abs(mean) + p.floor_s


def var_tol(p: Precision, e, sigma, var):
    return (2.0 * e + e * e) * sigma * sigma + p.u_s * np.abs(var) + p.floor_s


def exact_tol(p: Precision, value, roundings: int):
    return roundings * p.u_s * np.abs(value)


def output_rounding(p: Precision, gx, beta):
    return 2.0 * p.u_o * (np.abs(gx) + np.abs(beta)) + p.floor_o


def y_train_tol(p: Precision, e, gamma, beta, xhat):
    return np.abs(gamma) * e * (1.0 + np.abs(xhat)) + output_rounding(p, gamma * xhat, beta)


def y_infer_tol(p: Precision, gamma, beta, xhat, x, rm, sigma_r):
    core = C0 * p.u_w * ((np.abs(x) + np.abs(rm)) / sigma_r + np.abs(xhat))
    return np.abs(gamma) * core + output_rounding(p, gamma * xhat, beta)


def dx_train_tol(p: Precision, e, gamma, sigma, dy, xhat, mean_abs_dy, mean_abs_dyxhat, dx):
    core = np.abs(dy) + 2.0 * (1.0 + np.abs(xhat)) * (mean_abs_dy + mean_abs_dyxhat)
    return np.abs(gamma) / sigma * e * core + 2.0 * p.u_o * np.abs(dx) + p.floor_o


def dx_infer_tol(p: Precision, dx):
    return (C0 * p.u_w + 2.0 * p.u_o) * np.abs(dx) + p.floor_o


def dgamma_tol(p: Precision, n, e_elem_sum, sum_abs_dyxhat, dgamma):
    """e_elem_sum: sum_i |dy_i| * (error of x_hat_i)."""
    return e_elem_sum + p.u_w * growth(n) * sum_abs_dyxhat + p.u_s * np.abs(dgamma) + p.floor_s


def dbeta_tol(p: Precision, n, sum_abs_dy, dbeta):
    return p.u_w * growth(n) * sum_abs_dy + p.u_s * np.abs(dbeta) + p.floor_s


def running_tol(p: Precision, tol_prev, tol_stat, w, prev, stat):
    """Propagation through one update. Every algebraically equivalent form of the update is
    admitted within its roundings: (1 - w) r + w s, r + w (s - r) (TensorFlow's
    assign_moving_average), r - (r - s) w. With w = 0 each form returns r exactly; with w = 1
    the first returns s exactly but the second rounds s - r and then r + (s - r), an error of
    at most 2 u (|r| + |s|); otherwise C0 roundings of the terms."""
    if w == 0.0:
        rounding = 0.0
    elif w == 1.0:
        rounding = 2.0 * p.u_s * (np.abs(prev) + np.abs(stat))
    else:
        rounding = C0 * p.u_s * (np.abs((1.0 - w) * prev) + np.abs(w * stat) + np.abs(w * (stat - prev))) + p.floor_s
    return abs(1.0 - w) * tol_prev + abs(w) * tol_stat + rounding
