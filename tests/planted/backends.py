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

from adapters.protocol import Problem


class NumpyBN:
    name = "numpy.clean"
    framework = "numpy"
    convention = "pytorch"
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

    def _stats(self, x, ax):
        axes = self._axes(x, ax)
        acc = np.float16 if (self.bug == "f16_accumulate" and x.dtype == np.float16) else x.dtype
        xs = x.astype(acc)
        mean = xs.mean(axis=axes, keepdims=True, dtype=acc)
        if self.bug == "one_pass_variance":
            var = (xs * xs).mean(axis=axes, keepdims=True, dtype=acc) - mean * mean
        else:
            d = xs - mean
            var = (d * d).mean(axis=axes, keepdims=True, dtype=acc)
        return mean.astype(x.dtype), var.astype(x.dtype)

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

    def _train(self, x, dy, g, b, eps, ax):
        n = x.size // x.shape[ax]
        mean, var = self._stats(x, ax)
        if self.bug == "f16_accumulate":
            x, mean, var = x.astype(dy.dtype), mean.astype(dy.dtype), var.astype(dy.dtype)
        r = self._rsqrt(var, eps)
        xhat = (x - mean) * r
        y = xhat * g + b
        axes = self._axes(x, ax)
        dbeta = dy.sum(axis=axes, keepdims=True)
        dgamma = (dy * xhat).sum(axis=axes, keepdims=True)
        if self.bug == "dgamma_is_dbeta":
            dgamma = dbeta
        dx = g * r * (dy - dbeta / n - xhat * dgamma / n)
        return self._nan_leak(x, y), self._nan_leak(x, dx), dgamma, dbeta, mean, var, n

    def _infer(self, x, dy, g, b, rm, rv, eps, ax):
        if self.bug == "infer_uses_batch_stats":
            y, dx, dg, db, *_ = self._train(x, dy, g, b, eps, ax)
            return y, dx, dg, db
        r = self._rsqrt(rv, eps)
        xhat = (x - rm) * r
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

    # -- the protocol's scenario ---------------------------------------------------------
    def run(self, pb: Problem, device: str):
        wp = self._wp(pb)
        ax = pb.axis
        out_dt = np.float16 if pb.dtype == "float16" else wp
        X = pb.x.astype(np.float16 if self.bug == "f16_accumulate" and pb.dtype == "float16" else wp)
        DY = pb.dy.astype(wp)
        C = pb.channels
        g = self._bc(pb.gamma.astype(wp), X[0], ax)
        b = self._bc(pb.beta.astype(wp), X[0], ax)
        if pb.running_mean is not None:
            rm, rv = pb.running_mean.astype(wp), pb.running_var.astype(wp)
        else:
            rm, rv = np.zeros(C, wp), np.ones(C, wp)
        n = X[0].size // max(X[0].shape[ax], 1) if X[0].shape[ax] else 0
        batch_stats = pb.mode == "train" or pb.mode == "frozen" or not pb.track_running_stats
        if batch_stats and n == 1:
            raise ValueError("Expected more than 1 value per channel when training")
        rec = {k: [] for k in ("y", "dx", "dgamma", "dbeta", "running_mean", "running_var")}

        def to_out(a):  # round to the case's dtype (bfloat16 via ml_dtypes), carried in wp
            return (a.astype(ml_dtypes.bfloat16) if pb.dtype == "bfloat16" else a.astype(out_dt)).astype(wp)

        def keep(y, dx, dg=None, db=None):
            rec["y"].append(to_out(y))
            rec["dx"].append(to_out(dx))
            if dg is not None:
                rec["dgamma"].append(dg.reshape(-1))
                rec["dbeta"].append(db.reshape(-1))
            if pb.track_running_stats:
                rec["running_mean"].append(rm.copy())
                rec["running_var"].append(rv.copy())

        if pb.mode == "infer" and pb.track_running_stats:
            y, dx, dg, db = self._infer(X[0].astype(wp), DY[0], g, b, self._bc(rm, X[0], ax), self._bc(rv, X[0], ax), pb.eps, ax)
            keep(y, dx, dg, db)
        else:
            steps = pb.steps if pb.mode != "infer" else 1
            for k in range(steps):
                x = X[k] if self.bug == "f16_accumulate" else X[k].astype(wp)
                y, dx, dg, db, mean, var, nn = self._train(x, DY[k], g, b, pb.eps, ax)
                if pb.track_running_stats and nn > 0 and self.bug != "wrong_axes":
                    fed = var.reshape(-1) if self.bug == "estimator_swapped" else var.reshape(-1) * (nn / (nn - 1))
                    rm = self._update(rm, mean.reshape(-1), pb.momentum)
                    rv = self._update(rv, fed, pb.momentum)
                keep(y, dx, *((dg, db) if pb.mode != "frozen" else ()))
        res = {k: np.stack(v) for k, v in rec.items() if v}
        if not pb.affine or pb.mode == "frozen":
            res.pop("dgamma", None)
            res.pop("dbeta", None)
        if pb.mode == "train":
            x = X[-1].astype(wp)
            if pb.track_running_stats:
                y, *_ = self._infer(x, DY[-1], g, b, self._bc(rm, x, ax), self._bc(rv, x, ax), pb.eps, ax)
            else:
                y, *_ = self._train(x, DY[-1], g, b, pb.eps, ax)
            res["y_eval"] = to_out(y)
        return res


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
}
PLANTED = {name: _planted(name, what) for name, (what, _) in BUGS.items()}
globals().update({cls.__name__: cls for cls in PLANTED.values()})


def all_planted():
    """Factory for --adapter tests/planted/backends.py:all_planted."""
    return [cls() for cls in PLANTED.values()]
