"""What the reference says a case must produce, under an adapter's declared conventions.

``expect`` composes the reference's pure functions into the scenario of
``adapters.protocol`` (train K steps, infer, frozen) and attaches a tolerance array to
every output (``conformance.tolerance``). The reference is computed once per case and
convention; it never sees a framework.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bn_conformance import reference as ref
from bn_conformance.adapters.protocol import Problem
from bn_conformance.reference.conventions import Convention

from . import tolerance as T
from .case import Case
from .distributions import get as distribution
from .vocab import round_to


@dataclass
class Expected:
    values: dict[str, np.ndarray] = field(default_factory=dict)
    tol: dict[str, np.ndarray] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)   # dtype in which to count ULPs
    required: tuple[str, ...] = ()
    undefined: str | None = None                           # the reference refuses, and why
    aux: dict = field(default_factory=dict)                # x_hat etc., for property checks
    stat_estimator: str = "biased"


def _bc(v, ndim, ax):
    shape = [1] * ndim
    shape[ax] = -1
    return np.asarray(v, np.float64).reshape(shape)


def _chan_mean(a, ax):
    a = np.moveaxis(a, ax, 0).reshape(a.shape[ax], -1)
    return a.mean(axis=1) if a.shape[1] else np.zeros(a.shape[0])


def _chan_sum(a, ax):
    return np.moveaxis(a, ax, 0).reshape(a.shape[ax], -1).sum(axis=1)


_TRAIN_MEMO: dict = {}


def _train_reference(case: Case, k: int, x, dy, g, b):
    """Reference forward and backward of training step k: independent of the convention,
    so computed once per case and step and shared by every adapter in the process."""
    key = (case.id, k)
    hit = _TRAIN_MEMO.get(key)
    if hit is None:
        if len(_TRAIN_MEMO) > 4096:
            _TRAIN_MEMO.clear()
        y, mean, var = ref.forward_train(x, g, b, case.eps, case.channel_axis)
        dx, dg, db = ref.backward_train(dy, x, g, case.eps, case.channel_axis)
        xhat = ref.normalized(x, case.eps, case.channel_axis)
        hit = _TRAIN_MEMO[key] = (y, mean, var, dx, dg, db, xhat)
    return hit


class _Builder:
    def __init__(self, case: Case, problem: Problem, conv: Convention):
        self.case, self.pb, self.conv = case, problem, conv
        self.p = T.Precision.of(case.dtype)
        self.ax, self.n = case.channel_axis, case.n
        self.exact = distribution(case.dist).has("exact")
        self.X = problem.x.astype(np.float64)
        self.DY = problem.dy.astype(np.float64)
        self.g = problem.gamma.astype(np.float64)
        self.b = problem.beta.astype(np.float64)
        self.out = Expected(stat_estimator=conv.estimator)
        self.rows: dict[str, list] = {}

    def add(self, name, value, tol):
        self.rows.setdefault(name, []).append((np.asarray(value, np.float64), np.asarray(tol, np.float64)))

    # -- one training-mode step ------------------------------------------------------------
    def train_step(self, k, grads=True, eval_only=False):
        """One training-mode step; with eval_only, just the output, recorded as y_eval
        (inference without running statistics normalises with the batch's)."""
        x, dy, ax, nd, p, n = self.X[k], self.DY[k], self.ax, self.X[k].ndim, self.p, self.n
        eps = self.case.eps
        y, mean, var, dx, dg, db, xhat = _train_reference(self.case, k, x, dy, self.g, self.b)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            sigma = np.sqrt(var + eps)
            kappa = _chan_mean(np.abs(x), ax) / sigma
            e_stats = T.budget(p, n, kappa)
            # a constant channel (exact variance 0): a stable algorithm's x_hat bound (tolerance 9)
            e = np.where(var == 0, T.degenerate_budget(p, n, _chan_mean(np.abs(x), ax), eps), e_stats)
            gb, bb, eb = _bc(self.g, nd, ax), _bc(self.b, nd, ax), _bc(e, nd, ax)
            self.add("y_eval" if eval_only else "y", y, T.y_train_tol(p, eb, gb, bb, xhat))
            if eval_only:
                return None
            if grads:
                m_dy, m_dyx = _chan_mean(np.abs(dy), ax), _chan_mean(np.abs(dy * xhat), ax)
                self.add("dx", dx, T.dx_train_tol(p, eb, gb, _bc(sigma, nd, ax), dy, xhat, _bc(m_dy, nd, ax),
                                                  _bc(m_dyx, nd, ax), dx))
                if self.case.affine:
                    e_sum = e * _chan_sum(np.abs(dy) * (1.0 + np.abs(xhat)), ax)
                    self.add("dgamma", dg, T.dgamma_tol(p, n, e_sum, _chan_sum(np.abs(dy * xhat), ax), dg))
                    self.add("dbeta", db, T.dbeta_tol(p, n, _chan_sum(np.abs(dy), ax), db))
            if self.exact:
                tm, tv = T.exact_tol(p, mean, 0), T.exact_tol(p, var, 0)
            else:
                tm, tv = T.mean_tol(p, e_stats, sigma, mean), T.var_tol(p, e_stats, sigma, var)
        self.add("batch_mean", mean, tm)
        self.add("batch_var", var, tv)
        self.out.aux.setdefault("xhat", []).append(xhat)
        self.out.aux.setdefault("sigma", []).append(sigma)
        self.out.aux.setdefault("dy", []).append(dy)
        return mean, var, tm, tv

    def representable(self, v):
        """Running statistics live in the parameter dtype: a value beyond its range is the
        infinity rounding gives (tolerance.py 10), and inference after training uses that."""
        with np.errstate(over="ignore", invalid="ignore"):
            r = round_to(v, self.pb.param_dtype)
        return np.where(np.isinf(r) & np.isfinite(v), r, v)

    def fed_var(self, var, tv):
        if self.conv.estimator == "unbiased":
            fed = ref.unbiased(var, self.n)  # raises UndefinedResult for n <= 1
            return fed, (T.exact_tol(self.p, fed, 2) if self.exact else tv * (self.n / (self.n - 1)))
        return var, tv

    # -- scenarios --------------------------------------------------------------------------
    def train(self, rm, rv, grads=True, steps=None):
        """K training steps from running stats (rm, rv); returns the final running stats and tolerances."""
        rule = self.conv.rule(self.case.momentum)
        if self.case.supplied:  # supplied statistics stand for a long-trained layer's saved state
            rule = rule.resumed()
        trm = np.zeros_like(rm)
        trv = np.zeros_like(rv)
        t = 0
        for k in range(steps or self.case.steps):
            mean, var, tm, tv = self.train_step(k, grads)
            if self.case.track:
                if self.n > 0:
                    t += 1
                    w = rule.weight(t)
                    fed, tf = self.fed_var(var, tv)
                    new_rm, new_rv = (self.representable(v) for v in ref.step(rm, rv, self.X[k], self.ax, rule, t))
                    trm = T.running_tol(self.p, trm, tm, w, rm, mean)
                    trv = T.running_tol(self.p, trv, tf, w, rv, fed)
                    rm, rv = new_rm, new_rv
                self.add("running_mean", rm, trm)
                self.add("running_var", rv, trv)
        return rm, rv, trm, trv

    def infer(self, rm, rv, trm, trv, k=0, grads=True, name_y="y"):
        x, dy, ax, nd, p, eps = self.X[k], self.DY[k], self.ax, self.X[k].ndim, self.p, self.case.eps
        y = ref.forward_inference(x, rm, rv, self.g, self.b, eps, ax)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            sr = _bc(np.sqrt(rv + eps), nd, ax)
            xhat = (x - _bc(rm, nd, ax)) / sr
            gb, bb = _bc(self.g, nd, ax), _bc(self.b, nd, ax)
            # error carried in from the running statistics themselves (zero when given)
            carried = np.abs(gb) * (_bc(trm, nd, ax) / sr + np.abs(xhat) * _bc(trv, nd, ax) / (2.0 * sr * sr))
            # x equal to the running mean with zero running variance: y = beta exactly (tolerance 9)
            at_mean = (_bc(rv, nd, ax) == 0) & (x == _bc(rm, nd, ax)) & (_bc(trm, nd, ax) == 0)
            y_tol = np.where(at_mean, T.output_rounding(p, 0.0, bb),
                             T.y_infer_tol(p, gb, bb, xhat, x, _bc(rm, nd, ax), sr) + carried)
            self.add(name_y, y, y_tol)
            if grads:
                dx, dg, db = ref.backward_inference(dy, x, rm, rv, self.g, eps, ax)
                self.add("dx", dx, T.dx_infer_tol(p, dx))
                if self.case.affine:
                    err_xhat = np.where(at_mean, 0.0,
                                        T.C0 * p.u_w * ((np.abs(x) + np.abs(_bc(rm, nd, ax))) / sr + np.abs(xhat)))
                    e_sum = _chan_sum(np.abs(dy) * err_xhat, ax)
                    self.add("dgamma", dg, T.dgamma_tol(p, self.n, e_sum, _chan_sum(np.abs(dy * xhat), ax), dg))
                    self.add("dbeta", db, T.dbeta_tol(p, self.n, _chan_sum(np.abs(dy), ax), db))

    def finish(self):
        for name, rows in self.rows.items():
            self.out.values[name] = np.stack([r[0] for r in rows])
            self.out.tol[name] = np.stack([r[1] for r in rows])
        if "y_eval" in self.out.values:
            self.out.values["y_eval"] = self.out.values["y_eval"][0]
            self.out.tol["y_eval"] = self.out.tol["y_eval"][0]
        stat_dt = self.pb.param_dtype
        for name in self.out.values:
            self.out.dtypes[name] = self.case.dtype if name in ("y", "dx", "y_eval") else stat_dt
        return self.out


def _uses_batch_stats(case: Case, conv: Convention) -> bool:
    if case.mode == "train" or not case.track:
        return True
    return case.mode == "frozen" and conv.frozen == "train"


def expect(case: Case, problem: Problem, conv: Convention) -> Expected:
    b = _Builder(case, problem, conv)
    if case.n == 1 and _uses_batch_stats(case, conv) and conv.one_value == "raises":
        b.out.undefined = (f"one value per channel in training; convention {conv.name!r} declares that this "
                           f"raises ({conv.sources.get('one_value', 'no source')})")
        return b.out
    affine_grads = ("dgamma", "dbeta") if case.affine else ()
    try:
        if case.mode == "train":
            if case.supplied:      # training from supplied statistics
                rm0, rv0 = problem.running_mean.astype(np.float64), problem.running_var.astype(np.float64)
            else:                  # from the framework's initial statistics (the preset's)
                rm0, rv0 = np.full(case.channels, conv.init_mean), np.full(case.channels, conv.init_var)
            rm, rv, trm, trv = b.train(rm0, rv0)
            if case.track:
                b.infer(rm, rv, trm, trv, k=case.steps - 1, grads=False, name_y="y_eval")
            else:
                b.train_step(case.steps - 1, grads=False, eval_only=True)
            tracked = ("running_mean", "running_var") if case.track else ()
            b.out.required = ("y", "dx", "y_eval") + affine_grads + tracked
        elif case.mode in ("infer", "fresh"):
            if case.track:
                if case.mode == "infer":
                    rm, rv = problem.running_mean.astype(np.float64), problem.running_var.astype(np.float64)
                else:              # a fresh layer: the framework's initial statistics (the preset's)
                    rm, rv = np.full(case.channels, conv.init_mean), np.full(case.channels, conv.init_var)
                b.infer(rm, rv, 0.0, 0.0)
                b.add("running_mean", rm, np.zeros_like(rm))
                b.add("running_var", rv, np.zeros_like(rv))
                b.out.required = ("y", "dx", "running_mean", "running_var") + affine_grads
            else:  # no running statistics: inference uses the batch's (PyTorch docs, track_running_stats)
                b.train_step(0)
                b.out.required = ("y", "dx") + affine_grads
        else:  # frozen
            rm, rv = problem.running_mean.astype(np.float64), problem.running_var.astype(np.float64)
            if conv.frozen == "inference":
                for k in range(case.steps):
                    b.infer(rm, rv, 0.0, 0.0, k=k)
                    b.add("running_mean", rm, np.zeros_like(rm))
                    b.add("running_var", rv, np.zeros_like(rv))
            else:
                b.train(rm, rv)
            b.rows.pop("dgamma", None)
            b.rows.pop("dbeta", None)
            b.out.required = ("y", "dx", "running_mean", "running_var") if case.track else ("y", "dx")
    except ref.UndefinedResult as exc:
        b.out.undefined = str(exc)
        return b.out
    return b.finish()
