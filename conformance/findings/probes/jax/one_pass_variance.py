"""One-pass variance E[x^2] - E[x]^2 (flax use_fast_variance=True, _compute_stats,
flax/linen/normalization.py:137-142, clamped at 0; haiku batch_norm.py:170-181, NOT
clamped) against the two-pass variance (use_fast_variance=False) on data with mean offset
R sigma: relative error of the variance vs the suite's stable-variance budget
2 e = 2 u g(n) (1 + kappa), kappa ~ R (conformance/tolerance.py section 2).

The one-pass error is ~ u kappa^2 (cancellation of two numbers ~ mean^2), so the ratio
grows like kappa / (2 g(n)): ~1 at R = 1e2 (n ~ 16..120) -> which side of the tolerance a
case falls on depends on the rounding of the reductions (summation order: vector width, FMA
contraction, threads), i.e. on the CPU; >> 1 at R >= 1e4 (f32) / 1e4 (f64).
"""
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
import haiku as hk

def budget(u, n, kappa):
    return 2 * u * (8 + 6 * np.sqrt(n)) * (1 + kappa)

rng = np.random.default_rng(0)
for dtn, u in (("float32", 2.0 ** -24), ("float64", 2.0 ** -53)):
    dt = jnp.dtype(dtn)
    for n in (16, 40, 120):
        for R in (1.0, 1e1, 1e2, 1e3, 1e4, 1e6, 1e8):
            if dtn == "float32" and R > 1e4:
                continue
            x = jnp.asarray(R + rng.normal(size=(n, 8)), dt)          # 8 channels, sigma ~ 1
            xn = np.asarray(x, np.float64)
            v_ref = xn.var(0)
            kappa = np.abs(xn).mean(0) / np.sqrt(v_ref + 1e-5)
            out = {}
            for fast in (True, False):
                bn = nn.BatchNorm(use_running_average=False, momentum=0.0, epsilon=1e-5, use_fast_variance=fast,
                                  param_dtype=dt)
                v0 = bn.init(jax.random.key(0), x)
                _, st = jax.jit(lambda x: bn.apply(v0, x, mutable=["batch_stats"]))(x)
                out["flax fast" if fast else "flax two-pass"] = np.asarray(st["batch_stats"]["var"], np.float64)
            f = hk.transform_with_state(lambda x: hk.BatchNorm(True, True, 0.0, eps=1e-5)(x, is_training=True))
            p, s = f.init(None, x)
            _, s2 = jax.jit(f.apply)(p, s, None, x)
            out["haiku"] = np.asarray(s2["batch_norm/~/var_ema"]["average"], np.float64).reshape(-1)
            row = [f"{dtn} n={n:4d} R={R:7.0e} kappa~{kappa.mean():8.3g}:"]
            for k, v in out.items():
                r = np.max(np.abs(v - v_ref) / ((v_ref + 1e-5) * budget(u, n, kappa)))
                neg = int((v < 0).sum())
                row.append(f"{k} {r:9.3g}" + (f" ({neg} negative)" if neg else ""))
            print("  ".join(row))
