"""Reference gradients against central finite differences of the reference forward.

With L = sum(dy * y), dL/dz ~ (L(z + h) - L(z - h)) / 2h with truncation error O(h^2)
and rounding error O(u / h); h = 1e-5 * (1 + |z|) balances them near 1e-10 relative.
"""
import numpy as np
import pytest

from bn_conformance import reference as ref

RTOL = 1e-7


def _fd(f, z, h_scale=1e-5):
    g = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        h = h_scale * (1.0 + abs(z[i]))
        zp, zm = z.copy(), z.copy()
        zp[i] += h
        zm[i] -= h
        g[i] = (f(zp) - f(zm)) / (zp[i] - zm[i])
    return g


def _close(a, b, what):
    scale = max(1.0, float(np.max(np.abs(b))))
    assert np.max(np.abs(a - b)) <= RTOL * scale, f"{what}: max |analytic - fd| = {np.max(np.abs(a - b)):.3g}"


@pytest.mark.parametrize("shape,axis,offset,eps", [((4, 3), 1, 0.0, 1e-5), ((3, 2, 4), 1, 5.0, 1e-3),
                                                   ((2, 3, 2, 2), -1, 0.0, 0.1), ((2, 2, 2, 2, 2), 1, 100.0, 1e-5)])
def test_training_gradients(shape, axis, offset, eps):
    rng = np.random.default_rng(1)
    C = shape[axis]
    x = rng.standard_normal(shape) + offset
    dy = rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    dx, dg, db = ref.backward_train(dy, x, gamma, eps, axis)
    loss_x = lambda z: float(np.sum(dy * ref.forward_train(z, gamma, beta, eps, axis)[0]))  # noqa: E731
    loss_g = lambda z: float(np.sum(dy * ref.forward_train(x, z, beta, eps, axis)[0]))  # noqa: E731
    loss_b = lambda z: float(np.sum(dy * ref.forward_train(x, gamma, z, eps, axis)[0]))  # noqa: E731
    _close(dx, _fd(loss_x, x), "dx")
    _close(dg, _fd(loss_g, gamma), "dgamma")
    _close(db, _fd(loss_b, beta), "dbeta")


@pytest.mark.parametrize("shape,axis", [((4, 3), 1), ((2, 3, 2, 2), -1)])
def test_inference_gradients_hold_statistics_constant(shape, axis):
    rng = np.random.default_rng(2)
    C = shape[axis]
    x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    rm, rv, eps = rng.standard_normal(C), rng.uniform(0.2, 2.0, C), 1e-3
    dx, dg, db = ref.backward_inference(dy, x, rm, rv, gamma, eps, axis)
    f = lambda z: float(np.sum(dy * ref.forward_inference(z, rm, rv, gamma, beta, eps, axis)))  # noqa: E731
    _close(dx, _fd(f, x), "dx")
    fg = lambda z: float(np.sum(dy * ref.forward_inference(x, rm, rv, z, beta, eps, axis)))  # noqa: E731
    _close(dg, _fd(fg, gamma), "dgamma")
    # and they differ from the training-mode gradient: the statistics really are constants
    dx_train, _, _ = ref.backward_train(dy, x, gamma, eps, axis)
    assert np.max(np.abs(dx - dx_train)) > 1e-3
