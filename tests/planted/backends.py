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

    # -- the scenario's hooks (bn_conformance.adapters.scenario plays the modes) ------------------
    def create(self, pb: Problem, device: str):
        wp = self._wp(pb)
        C = pb.channels
        return {"pb": pb, "wp": wp, "rm": np.zeros(C, wp), "rv": np.ones(C, wp),
                "g": pb.gamma.astype(wp), "b": pb.beta.astype(wp)}

    def load_stats(self, layer, mean, var):
        layer["rm"], layer["rv"] = np.asarray(mean).astype(layer["wp"]), np.asarray(var).astype(layer["wp"])
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
        if batch and n == 1:
            raise ValueError("Expected more than 1 value per channel when training")
        if batch:
            y, dx, dg, db, mean, var, nn = self._train(x, dy, g, b, pb.eps, ax)
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
}
PLANTED = {name: _planted(name, what) for name, (what, _) in BUGS.items()}
globals().update({cls.__name__: cls for cls in PLANTED.values()})


def all_planted():
    """Factory for --adapter tests/planted/backends.py:all_planted."""
    return [cls() for cls in PLANTED.values()]
