"""A plain NumPy batch-norm backend, written independently of ``reference/``, and
planted-bug variants of it. The clean backend must pass the whole grid (the tolerances
do not raise false alarms on an honest float32 implementation); each planted bug must
be caught, on the check one would expect.

The clean backend follows the "pytorch" convention preset: new-batch momentum,
unbiased running variance, running stats initialised to 0 and 1, frozen = parameters
only, training with one value per channel raises. It computes in float32 for 16- and
32-bit inputs and float64 for float64 inputs, like a typical kernel.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from bn_conformance.adapters import Hooks, Problem, Step


class NumpyBN(Hooks):
    name = "numpy.clean"
    framework = "numpy"
    convention = "pytorch"
    capabilities = ("forward", "running_stats", "grad", "replicas")   # computes across shards
    bug = None

    def version(self):
        return np.__version__

    def devices(self):
        return ["cpu"]

    def supports(self, pb: Problem, device: str):
        if pb.momentum is None:
            return "no cumulative average in this backend"
        return None

    # -- the math, in the working precision ------------------------------------------------
    def _wp(self, pb):
        return np.float64 if pb.dtype == "float64" else np.float32

    def _axes(self, x, ax):
        if self.bug == "wrong_axes":
            return (0,)
        return tuple(i for i in range(x.ndim) if i != ax)

    def _scale(self, x, ax):
        """A power of two per channel near max|x| (exact scaling): statistics of x / s cannot
        overflow, as an honest float32 kernel must ensure (Welford or scaled sums)."""
        one = np.ones_like(self._bc(np.ones(x.shape[ax], x.dtype), x, ax))
        if self.bug == "overflow_unscaled" or x.size == 0:
            return one
        with np.errstate(all="ignore"):
            m = np.max(np.abs(np.where(np.isfinite(x), x, 0)), axis=self._axes(x, ax), keepdims=True)
            e = np.floor(np.log2(np.where(m > 1, m, 1.0)))
        big = m > 2.0 ** (np.finfo(x.dtype).maxexp // 2 - 10)      # only where squares could overflow
        return np.where(big, np.ldexp(one, e.astype(np.int64)), one).astype(x.dtype)

    def _stats(self, x, ax):
        """(mean, variance of x / s, s) per channel, s from ``_scale``."""
        axes = self._axes(x, ax)
        acc = np.float16 if (self.bug == "f16_accumulate" and x.dtype == np.float16) else x.dtype
        if self.bug == "bf16_long_accumulate" and x.size // max(x.shape[ax], 1) > 1024 and self._bf16:
            return self._bf16_stats(x, axes)
        s = self._scale(x, ax).astype(acc)
        xs = x.astype(acc) / s
        mean = xs.mean(axis=axes, keepdims=True, dtype=acc)
        if self.bug in ("one_pass_variance", "one_pass_clamped"):
            var = (xs * xs).mean(axis=axes, keepdims=True, dtype=acc) - mean * mean
            if self.bug == "one_pass_clamped":
                var = np.maximum(var, 0)
        else:
            d = xs - mean
            var = (d * d).mean(axis=axes, keepdims=True, dtype=acc)
        if self.bug == "vector_tail" and x.shape[ax] > 8 and x.shape[ax] % 8:
            idx = [slice(None)] * x.ndim
            idx[ax] = -1
            src = [slice(None)] * x.ndim
            src[ax] = 0
            mean, var = mean.copy(), var.copy()
            mean[tuple(idx)], var[tuple(idx)] = mean[tuple(src)], var[tuple(src)]
        return (mean * s).astype(x.dtype), var.astype(x.dtype), s.astype(x.dtype)

    def _bf16_stats(self, x, axes):
        """Planted: a long bfloat16 reduction accumulated in bfloat16."""
        b = ml_dtypes.bfloat16
        xs = x.astype(b)
        mean = np.mean(xs, axis=axes, keepdims=True, dtype=b)
        d = (xs - mean).astype(b)
        var = np.mean(d * d, axis=axes, keepdims=True, dtype=b)
        return mean.astype(x.dtype), var.astype(x.dtype), np.ones_like(mean, dtype=x.dtype)

    def _rsqrt(self, var, eps):
        if self.bug == "eps_outside_sqrt":
            return 1.0 / (np.sqrt(var) + eps)
        return 1.0 / np.sqrt(var + eps)

    def _nan_leak(self, x, arr):
        if self.bug == "nan_leak" and np.isnan(x).any():
            return np.full_like(arr, np.nan)
        return arr

    def _bc(self, v, x, ax):
        shape = [1] * x.ndim
        shape[ax] = -1
        return v.reshape(shape)

    def _train(self, x, dy, g, b, eps, ax, replicas=None):
        n = x.size // x.shape[ax]
        if self.bug == "replica_mean_of_variances" and replicas:
            mean, var, s = self._replica_stats(x, ax, replicas)
        else:
            mean, var, s = self._stats(x, ax)
        if self.bug == "f16_accumulate":
            x, mean, var, s = x.astype(dy.dtype), mean.astype(dy.dtype), var.astype(dy.dtype), s.astype(dy.dtype)
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            scaled = s != 1
            r_s = self._rsqrt(var, eps / (s.astype(np.float64) ** 2)).astype(x.dtype)  # 1 / sigma of x / s
            use = scaled & (var > 0)                                                   # else eps / s^2 underflows
            r = np.where(use, r_s / s, self._rsqrt(var * s * s, eps).astype(x.dtype))  # 1 / sigma of x
            xhat = np.where(use, ((x - mean) / s) * r_s, (x - mean) * r)
            var = var * s * s                                                          # Inf when beyond the dtype
        y = xhat * g + b
        axes = tuple(i for i in range(x.ndim) if i != ax)        # parameter gradients: per channel, always
        dbeta = dy.sum(axis=axes, keepdims=True)
        dgamma = (dy * xhat).sum(axis=axes, keepdims=True)
        if self.bug == "dgamma_is_dbeta":
            dgamma = dbeta
        dx = g * r * (dy - dbeta / n - xhat * dgamma / n)
        return self._nan_leak(x, y), self._nan_leak(x, dx), dgamma, dbeta, mean, var, n

    def _replica_stats(self, x, ax, replicas):
        """Planted: synchronised statistics as the unweighted mean of the replicas' means and
        variances (wrong for unequal shards, and for shards with different means)."""
        means, variances, start = [], [], 0
        for size in replicas:
            m, v, _ = self._stats(x[start:start + size], ax)
            means.append(m)
            variances.append(v)
            start += size
        return np.mean(means, axis=0), np.mean(variances, axis=0), np.ones_like(means[0])

    def _infer(self, x, dy, g, b, rm, rv, eps, ax):
        if self.bug == "infer_uses_batch_stats":
            y, dx, dg, db, *_ = self._train(x, dy, g, b, eps, ax)
            return y, dx, dg, db
        if self.bug != "accepts_invalid_variance" and np.any(np.isfinite(rv) & (rv + eps <= 0)):
            raise ValueError("running variance + eps <= 0: no real normalisation")
        r = self._rsqrt(rv, eps)
        xhat = (x - rm) * r
        if self.bug == "folded_inference":       # y = x * a + (beta - mean * a), as fused inference kernels fold it
            a = g * r
            y = x * a + (b - rm * a)
        else:
            y = xhat * g + b
        axes = self._axes(x, ax)
        if self.bug == "infer_grad_through_batch":
            _, dx, *_ = self._train(x, dy, g, b, eps, ax)
        else:
            dx = dy * g * r
        return y, dx, (dy * xhat).sum(axis=axes, keepdims=True), dy.sum(axis=axes, keepdims=True)

    def _update(self, old, stat, f):
        if self.bug == "stale_running_stats":
            return old
        if self.bug == "momentum_inverted":
            return f * old + (1.0 - f) * stat
        return (1.0 - f) * old + f * stat

    # -- the scenario's hooks (bn_conformance.adapters.scenario plays the modes) ------------------
    def create(self, pb: Problem, device: str):
        wp = self._wp(pb)
        C = pb.channels
        self._bf16 = pb.dtype == "bfloat16"
        return {"pb": pb, "wp": wp, "rm": np.zeros(C, wp), "rv": np.ones(C, wp),
                "g": pb.gamma.astype(wp), "b": pb.beta.astype(wp)}

    def load_stats(self, layer, mean, var):
        layer["rm"], layer["rv"] = np.asarray(mean).astype(layer["wp"]), np.asarray(var).astype(layer["wp"])
        layer["loaded"] = True
        return layer

    def freeze(self, layer):   # the "pytorch" preset: frozen parameters, the mode is untouched
        return layer

    def forward(self, layer, x, dy, training):
        pb, wp = layer["pb"], layer["wp"]
        ax = pb.axis
        f16 = self.bug == "f16_accumulate" and pb.dtype == "float16"
        x = np.asarray(x).astype(np.float16 if f16 else wp)
        dy = np.asarray(dy if dy is not None else np.zeros(pb.shape)).astype(wp)
        g, b = self._bc(layer["g"], x, ax), self._bc(layer["b"], x, ax)
        n = x.size // x.shape[ax] if x.shape[ax] else 0
        batch = training or not pb.track_running_stats
        if self.bug == "one_sample_running_stats" and training and x.shape[0] == 1 and pb.track_running_stats:
            batch = False                           # planted: a batch of one sample treated as inference
        if self.bug == "fresh_uses_batch_stats" and not training and not layer.get("touched"):
            batch = True                            # planted: a fresh layer normalises with the batch
        layer["touched"] = layer.get("touched") or training or layer.get("loaded", False)
        if batch and n == 1:
            raise ValueError("Expected more than 1 value per channel when training")
        if batch:
            y, dx, dg, db, mean, var, nn = self._train(x, dy, g, b, pb.eps, ax, pb.replicas)
            if training and pb.track_running_stats and nn > 0 and self.bug != "wrong_axes":
                fed = var.reshape(-1) if self.bug == "estimator_swapped" else var.reshape(-1) * (nn / (nn - 1))
                layer["rm"] = self._update(layer["rm"], mean.reshape(-1), pb.momentum)
                layer["rv"] = self._update(layer["rv"], fed, pb.momentum)
        else:
            y, dx, dg, db = self._infer(x.astype(wp), dy, g, b, self._bc(layer["rm"], x, ax),
                                        self._bc(layer["rv"], x, ax), pb.eps, ax)
        return Step(self._round(y, pb), self._round(dx, pb), dg.reshape(-1), db.reshape(-1)), layer

    def stats(self, layer):
        return layer["rm"].copy(), layer["rv"].copy()

    @staticmethod
    def _round(a, pb):
        """Round to the case's dtype (bfloat16 via ml_dtypes), as a kernel's output would be."""
        out = ml_dtypes.bfloat16 if pb.dtype == "bfloat16" else (np.float16 if pb.dtype == "float16" else a.dtype)
        return np.asarray(a).astype(out).astype(np.float64)


def _planted(bug_name: str, doc: str):
    return type(f"Planted_{bug_name}", (NumpyBN,), {"name": f"numpy.{bug_name}", "bug": bug_name, "__doc__": doc})


# bug -> (what it is, the checks that must catch it)
BUGS = {
    "momentum_inverted": ("running = f*old + (1-f)*batch", {"running_mean", "running_var", "y_eval"}),
    "estimator_swapped": ("running variance fed the biased batch variance", {"running_var"}),
    "eps_outside_sqrt": ("1/(sqrt(var) + eps)", {"y", "dx"}),
    "wrong_axes": ("statistics over the batch axis only, per position", {"y", "dx"}),
    "one_pass_variance": ("var = E[x^2] - E[x]^2", {"y", "dx", "running_var"}),
    "stale_running_stats": ("running statistics never updated", {"running_mean", "running_var"}),
    "infer_grad_through_batch": ("inference dx flows through batch statistics", {"dx"}),
    "infer_uses_batch_stats": ("inference ignores the supplied running statistics", {"y"}),
    "nan_leak": ("a NaN anywhere poisons every channel", {"isolation", "y"}),
    "dgamma_is_dbeta": ("dgamma computed as sum(dy)", {"dgamma"}),
    "f16_accumulate": ("float16 inputs accumulated in float16", {"y", "dx", "running_mean", "running_var"}),
    # one per area added since: synchronised, lifecycle, invalid statistics, degenerate, overflow, shape classes
    "replica_mean_of_variances": ("synchronised statistics as the plain mean of the replicas' statistics",
                                  {"y", "running_var"}),
    "fresh_uses_batch_stats": ("a fresh layer normalises inference with the batch's statistics", {"y"}),
    "accepts_invalid_variance": ("a running variance + eps <= 0 accepted (NaN out) instead of refused", {"outcome"}),
    "folded_inference": ("inference folded into x * a + (beta - mean * a)", {"y"}),
    "one_pass_clamped": ("var = max(0, E[x^2] - E[x]^2), as fast-variance kernels compute it", {"y"}),
    "overflow_unscaled": ("squared deviations summed without scaling: they overflow float32", {"y", "dx"}),
    "vector_tail": ("with more than 8 channels, the last channel of a partial vector gets channel 0's statistics",
                    {"y"}),
    "one_sample_running_stats": ("a training batch of one sample normalised with the running statistics", {"y"}),
    "bf16_long_accumulate": ("bfloat16 reductions longer than 1024 values accumulated in bfloat16", {"y"}),
}
PLANTED = {name: _planted(name, what) for name, (what, _) in BUGS.items()}
globals().update({cls.__name__: cls for cls in PLANTED.values()})


def all_planted():
    """Factory for --adapter tests/planted/backends.py:all_planted."""
    return [cls() for cls in PLANTED.values()]


def caught_on(bug: str, cases) -> dict[str, set]:
    """check name -> ids of ``cases`` on which the suite reports the planted ``bug`` (the
    evidence the default tier keeps: conformance/coverage.json "planted")."""
    from collections import defaultdict

    from bn_conformance.compare import FAILING
    from bn_conformance.evaluate import evaluate
    out: dict = defaultdict(set)
    with np.errstate(all="ignore"):
        for case in cases:
            for c in evaluate(PLANTED[bug](), "cpu", case).checks:
                if c.verdict in FAILING:
                    out[c.name].add(case.id)
    return dict(out)
