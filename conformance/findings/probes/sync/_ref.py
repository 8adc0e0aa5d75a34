"""NumPy reference for batch norm over the CONCATENATED (global) batch.
Channels-last: x has shape (N, C); statistics over axis 0."""
import numpy as np


def make_data(n_per_shard=(4, 4), C=3, means=(0.0, 5.0), seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    shards = [rng.normal(m, 1.0, (n, C)) for n, m in zip(n_per_shard, means)]
    return [s.astype(dtype) for s in shards]


def ref_bn(x, eps, rows=None):
    """x: (N, C) float64 computation. rows: optional bool (N,) selecting the rows that
    contribute to the statistics (mask). Returns y, mean, biased var, unbiased var."""
    x = np.asarray(x, np.float64)
    xs = x if rows is None else x[np.asarray(rows, bool)]
    mu = xs.mean(0)
    var = xs.var(0)
    uvar = xs.var(0, ddof=1)
    y = (x - mu) / np.sqrt(var + eps)
    return y, mu, var, uvar


def ref_dx(x, dy, eps):
    """Gradient of sum(y*dy) w.r.t. x for y = BN(x) (gamma=1, beta=0), stats over all rows."""
    x = np.asarray(x, np.float64); dy = np.asarray(dy, np.float64)
    N = x.shape[0]
    mu = x.mean(0); var = x.var(0); inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv
    return inv / N * (N * dy - dy.sum(0) - xhat * (dy * xhat).sum(0))


def ref_dx_local(shards, dys, eps):
    """What dx would be if each shard were normalized with its OWN stats (no sync)."""
    return np.concatenate([ref_dx(s, d, eps) for s, d in zip(shards, dys)])


def maxerr(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def ref_dx_sync_fwd_local_bwd(shards, dys, eps):
    """dx if forward used GLOBAL stats but backward reduced sum(dy), sum(dy*xhat) only locally
    (i.e. missing the cross-replica gradient terms)."""
    x = np.concatenate(shards).astype(np.float64)
    mu = x.mean(0); inv = 1.0 / np.sqrt(x.var(0) + eps)
    out = []
    for s, d in zip(shards, dys):
        s = s.astype(np.float64); d = np.asarray(d, np.float64); n = s.shape[0]
        xh = (s - mu) * inv
        out.append(inv / n * (n * d - d.sum(0) - xh * (d * xh).sum(0)))
    return np.concatenate(out)
