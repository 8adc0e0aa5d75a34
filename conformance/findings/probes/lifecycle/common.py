"""Shared data and functions for the lifecycle and invalid-statistics probes.

Channel 0 always carries the invalid statistic; channels 1,2 are valid
(mean 0.5, var 2.0) so we can see whether corruption leaks across channels.
"""
import os
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
import numpy as np

np.set_printoptions(precision=5, suppress=False, linewidth=160)

# (4,3): channel axis 1 == -1, so it is valid for every API's default.
X2 = np.array([[-1, 0, 1],
               [ 1, 2, 1],
               [ 2, 4, 2],
               [ 3, 6, 4]], dtype=np.float32)
# (2,3,2,2) NCHW version; channel 0 contains the value 1.0 (== supplied mean)
X4 = np.array([[[[-1, 1], [2, 3]], [[0, 2], [4, 6]], [[1, 1], [2, 4]]],
               [[[0, 1], [4, -2]], [[1, 3], [5, 7]], [[2, 0], [3, 3]]]], dtype=np.float32)
X4_NHWC = np.ascontiguousarray(X4.transpose(0, 2, 3, 1))

def batch_stats(x, axis):
    red = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    m = x.mean(red, dtype=np.float64)
    v = x.var(red, dtype=np.float64)
    n = x.size // x.shape[axis]
    return m, v, v * n / (n - 1)

GOOD_MEAN = 0.5
GOOD_VAR = 2.0
BAD_MEAN_CH0 = 1.0   # equals an element of channel 0 -> exposes 0/0 when var=0, eps=0

def cases(default_eps):
    """name -> (mean[3], var[3], eps)"""
    m = np.array([BAD_MEAN_CH0, GOOD_MEAN, GOOD_MEAN], np.float32)
    def v(x):
        return np.array([x, GOOD_VAR, GOOD_VAR], np.float32)
    return {
        "var=-1":          (m, v(-1.0), default_eps),
        "var=0,eps>0":     (m, v(0.0), default_eps),
        "var=0,eps=0":     (m, v(0.0), 0.0),
        "var=NaN":         (m, v(np.nan), default_eps),
        "var=+Inf":        (m, v(np.inf), default_eps),
        "mean=NaN":        (np.array([np.nan, GOOD_MEAN, GOOD_MEAN], np.float32), v(1.0), default_eps),
    }

def per_channel(y, axis):
    """Summarise an output per channel: 'finite' or the raw values if any non-finite."""
    y = np.asarray(y, dtype=np.float64)
    y = np.moveaxis(y, axis, 0).reshape(y.shape[axis], -1)
    out = []
    for c in range(y.shape[0]):
        row = y[c]
        if c > 0 and np.all(np.isfinite(row)):
            out.append(f"ch{c}:finite")
        else:
            out.append(f"ch{c}:" + np.array2string(row, precision=3))
    return " ".join(out)

def vec(v):
    return np.array2string(np.asarray(v, dtype=np.float64).ravel(), precision=5)

def expected_inference(x, mean, var, eps, axis):
    """Reference (x-mean)/sqrt(var+eps) in float64 (no affine)."""
    shp = [1] * x.ndim
    shp[axis % x.ndim] = -1
    with np.errstate(all="ignore"):
        return (x - np.reshape(mean, shp)) / np.sqrt(np.reshape(var, shp).astype(np.float64) + eps)

def fresh_expect(x, eps):
    return x / np.sqrt(1.0 + eps)

def report(api, situation, msg):
    print(f"[{api}] {situation}: {msg}", flush=True)

def err(e):
    s = f"{type(e).__name__}: {e}"
    s = " ".join(s.split())
    return s[:400]
