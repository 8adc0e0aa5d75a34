"""The reference against 50-digit mpmath, computed by independent loop code.

Claim under test (reference/dd.py): outputs, statistics and gradients are within one
float64 ulp of the exact value. Inputs are float64 numbers, taken as exact. The claim
holds while the double-double working precision (~106 bits) absorbs the cancellation:
a mean offset R costs log2(R) bits, so up to R ~ 1e12 the result is still within 1 ulp;
that is checked here for R up to 1e12.
"""
import mpmath as mp
import numpy as np
import pytest

from bn_conformance import reference as ref
from bn_conformance.reference.running import RunningRule

mp.mp.dps = 50


def _ulp_error(got, exact):
    assert got.shape == exact.shape, (got.shape, exact.shape)
    exact_f = np.array([float(v) for v in exact.reshape(-1)])
    err = np.array([abs(mp.mpf(float(g)) - e) for g, e in zip(got.reshape(-1), exact.reshape(-1))])
    spacing = np.spacing(np.abs(exact_f))
    spacing = np.where(spacing == 0, np.finfo(np.float64).smallest_subnormal, spacing)
    return float(np.max(err.astype(float) / spacing)) if err.size else 0.0


def _exact_bn(x, gamma, beta, dy, eps, axis):
    """Straightforward 50-digit batch norm over every axis but ``axis``."""
    xm = np.moveaxis(x, axis, 0)
    dym = np.moveaxis(dy, axis, 0)
    C = xm.shape[0]
    flat = xm.reshape(C, -1)
    dflat = dym.reshape(C, -1)
    n = flat.shape[1]
    E = mp.mpf(eps)
    Y, DX = np.empty(flat.shape, dtype=object), np.empty(flat.shape, dtype=object)
    means, variances, dgs, dbs = [], [], [], []
    for c in range(C):
        xs = [mp.mpf(float(v)) for v in flat[c]]
        ds = [mp.mpf(float(v)) for v in dflat[c]]
        mu = mp.fsum(xs) / n
        var = mp.fsum((v - mu) ** 2 for v in xs) / n
        sig = mp.sqrt(var + E)
        xh = [(v - mu) / sig for v in xs]
        g, b = mp.mpf(float(gamma[c])), mp.mpf(float(beta[c]))
        db = mp.fsum(ds)
        dg = mp.fsum(d * h for d, h in zip(ds, xh))
        for i in range(n):
            Y[c, i] = g * xh[i] + b
            DX[c, i] = g / sig * (ds[i] - db / n - xh[i] * dg / n)
        means.append(mu)
        variances.append(var)
        dgs.append(dg)
        dbs.append(db)
    back = lambda a: np.moveaxis(a.reshape(xm.shape), 0, axis)  # noqa: E731
    return back(Y), back(DX), np.array(means, dtype=object), np.array(variances, dtype=object), \
        np.array(dgs, dtype=object), np.array(dbs, dtype=object)


def _data(shape, axis, offset, seed):
    rng = np.random.default_rng(seed)
    C = shape[axis]
    scale = rng.uniform(0.5, 2.0, C)
    cshape = [1] * len(shape)
    cshape[axis] = C
    x = offset * scale.reshape(cshape) + rng.standard_normal(shape) * scale.reshape(cshape)
    return x, rng.standard_normal(C), rng.standard_normal(C), rng.standard_normal(shape)


@pytest.mark.parametrize("shape,axis", [((4, 3), 1), ((3, 2, 5), 1), ((2, 3, 3, 2), 1), ((2, 3, 2, 4), -1),
                                        ((2, 2, 2, 2, 3), -1)])
@pytest.mark.parametrize("offset", [0.0, 1e4, 1e8, 1e12])
def test_training_forward_and_backward_within_one_ulp(shape, axis, offset):
    x, gamma, beta, dy = _data(shape, axis, offset, seed=len(shape) + int(np.log10(offset + 1)))
    eps = 1e-5
    y, mean, var = ref.forward_train(x, gamma, beta, eps, axis)
    dx, dg, db = ref.backward_train(dy, x, gamma, eps, axis)
    Y, DX, M, V, DG, DB = _exact_bn(x, gamma, beta, dy, eps, axis)
    for name, got, exact in [("y", y, Y), ("mean", mean, M), ("var", var, V), ("dx", dx, DX),
                             ("dgamma", dg, DG), ("dbeta", db, DB)]:
        assert _ulp_error(got, exact) <= 1.0, f"{name}: {_ulp_error(got, exact):.3g} ulp (offset {offset:g})"


@pytest.mark.parametrize("shape,axis", [((5, 3), 1), ((2, 3, 2, 2), -1)])
def test_inference_forward_and_backward_within_one_ulp(shape, axis):
    x, gamma, beta, dy = _data(shape, axis, 3.0, seed=7)
    C = shape[axis]
    rng = np.random.default_rng(8)
    rm, rv = rng.standard_normal(C), rng.uniform(0.1, 3.0, C)
    eps = 1e-3
    y = ref.forward_inference(x, rm, rv, gamma, beta, eps, axis)
    dx, dg, db = ref.backward_inference(dy, x, rm, rv, gamma, eps, axis)
    xm, dym = np.moveaxis(x, axis, -1), np.moveaxis(dy, axis, -1)
    Y = np.empty(xm.shape, dtype=object)
    DX = np.empty(xm.shape, dtype=object)
    DG, DB = [mp.mpf(0)] * C, [mp.mpf(0)] * C
    for idx in np.ndindex(xm.shape):
        c = idx[-1]
        s = mp.sqrt(mp.mpf(float(rv[c])) + mp.mpf(eps))
        h = (mp.mpf(float(xm[idx])) - mp.mpf(float(rm[c]))) / s
        Y[idx] = mp.mpf(float(gamma[c])) * h + mp.mpf(float(beta[c]))
        DX[idx] = mp.mpf(float(dym[idx])) * mp.mpf(float(gamma[c])) / s
        DG[c] += mp.mpf(float(dym[idx])) * h
        DB[c] += mp.mpf(float(dym[idx]))
    Y, DX = np.moveaxis(Y, -1, axis), np.moveaxis(DX, -1, axis)
    for name, got, exact in [("y", y, Y), ("dx", dx, DX), ("dgamma", dg, np.array(DG, dtype=object)),
                             ("dbeta", db, np.array(DB, dtype=object))]:
        assert _ulp_error(got, exact) <= 1.0, name


@pytest.mark.parametrize("schedule,f", [("ema", 0.1), ("ema", 0.7), ("cumulative", 0.0), ("debiased", 0.1)])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_running_trajectory_within_one_ulp(schedule, f, estimator):
    rng = np.random.default_rng(3)
    batches = [rng.standard_normal((6, 2)) * 1.5 + 4.0 for _ in range(4)]
    rule = RunningRule(schedule, f, estimator)
    means, variances = ref.trajectory(batches, 1, rule, np.zeros(2), np.ones(2))
    rm, rv = [mp.mpf(0)] * 2, [mp.mpf(1)] * 2
    F = mp.mpf(f)
    for t, xb in enumerate(batches, 1):
        if schedule == "cumulative":
            w = mp.mpf(1) / t
        elif schedule == "debiased":
            w = F / (1 - (1 - F) ** t)
        else:
            w = F
        w = mp.mpf(float(w))  # the reference rounds the weight to float64 once, as a framework would
        for c in range(2):
            xs = [mp.mpf(float(v)) for v in xb[:, c]]
            mu = mp.fsum(xs) / 6
            var = mp.fsum((v - mu) ** 2 for v in xs) / (5 if estimator == "unbiased" else 6)
            rm[c] = (1 - w) * rm[c] + w * mu
            rv[c] = (1 - w) * rv[c] + w * var
            # the reference rounds the running value to float64 after each update
            rm[c], rv[c] = mp.mpf(float(rm[c])), mp.mpf(float(rv[c]))
        assert _ulp_error(means[t - 1], np.array(rm, dtype=object)) <= 1.0
        assert _ulp_error(variances[t - 1], np.array(rv, dtype=object)) <= 1.0


def test_edge_outcomes_are_defined():
    x = np.array([[1.0, np.nan], [2.0, 5.0], [3.0, 7.0]])
    y, mean, var = ref.forward_train(x, np.ones(2), np.zeros(2), 1e-5, 1)
    assert np.all(np.isfinite(y[:, 0])) and np.all(np.isnan(y[:, 1]))      # NaN stays in its channel
    const = np.full((4, 1), 3.0)
    y, _, var = ref.forward_train(const, np.array([2.0]), np.array([0.5]), 1e-5, 1)
    assert var[0] == 0.0 and np.all(y == 0.5)                                # constant channel -> beta
    with pytest.raises(ref.UndefinedResult):
        ref.unbiased(np.array([0.0]), 1)                                     # n/(n-1) undefined at n = 1
    empty = np.zeros((0, 2))
    means, variances = ref.trajectory([empty], 1, RunningRule("ema", 0.1, "unbiased"), np.zeros(2), np.ones(2))
    assert np.all(means == 0) and np.all(variances == 1)                     # empty batch: unchanged
    inf = np.array([[1.0], [np.inf]])
    y = ref.forward_inference(inf, np.array([0.0]), np.array([1.0]), np.array([-2.0]), np.array([0.0]), 0.0, 1)
    assert y[0, 0] == -2.0 and y[1, 0] == -np.inf                            # Inf propagates as IEEE says
