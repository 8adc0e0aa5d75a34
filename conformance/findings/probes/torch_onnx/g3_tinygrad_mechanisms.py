"""tinygrad 0.14 nn.BatchNorm on DEV=CPU: where float16 precision is lost, the output dtype,
and the autodiff underflow of d rsqrt(v)/dv at huge variances."""
import os
os.environ.setdefault("DEV", "CPU")
import numpy as np
from tinygrad import Context, Tensor, dtypes, nn
from importlib.metadata import version

print("tinygrad", version("tinygrad"))
rng = np.random.default_rng(0)
C = 3
x16 = (rng.standard_normal((16, C)) * 0.5 + 3.0).astype(np.float16)
x64 = x16.astype(np.float64)

# 1. Tensor.mean of float16: float32 accumulation (sum_acc_dtype) but the result is cast back to float16
m = Tensor(x16, dtype=dtypes.float16).mean(axis=0)
print("mean dtype", m.dtype, "| values", m.numpy(), "| exact", x64.mean(0),
      "| == float16(exact):", np.array_equal(m.numpy(), x64.mean(0).astype(np.float16)))
xs = np.full((4096, 1), 60.0, np.float16)
print("float32 accumulation: mean of 4096 x 60.0 (sum 245760 > float16 max) =", Tensor(xs, dtype=dtypes.float16).mean().numpy())
v = ((Tensor(x16, dtype=dtypes.float16) - m.reshape(1, C)) ** 2)
print("centred squares dtype", v.dtype)
xh = (np.array([[4096.0 * 7], [-4096.0 * 7]], np.float16))
print("huge float16: (x-mean)^2 with |x-mean| = 28672 ->", ((Tensor(xh, dtype=dtypes.float16)) ** 2).numpy().ravel(), "(float16 max 65504)")

# 2. output dtype: promoted by any float32 tensor taking part
for affine, track, training in ((True, True, True), (False, True, True), (False, True, False), (False, False, True), (True, False, False)):
    bn = nn.BatchNorm(C, affine=affine, track_running_stats=track)
    with Context(TRAINING=int(training)):
        y = bn(Tensor(x16, dtype=dtypes.float16))
    print(f"affine={affine!s:5} track={track!s:5} training={training!s:5}: y dtype {y.dtype}")

# 3. dbeta with a float16 dy on a float32 y (what the adapter passes) vs a float32 dy
dy16 = rng.standard_normal((16, C)).astype(np.float16)
for dyt in (dtypes.float16, dtypes.float32):
    bn = nn.BatchNorm(C)
    xt = Tensor(x16, dtype=dtypes.float16)
    with Context(TRAINING=1):
        y = bn(xt)
        y.backward(Tensor(dy16.astype(np.float32 if dyt == dtypes.float32 else np.float16), dtype=dyt))
    db = bn.bias.grad.numpy().astype(np.float64)
    print(f"dy {dyt}: y {y.dtype}, dbeta {db} vs sum(dy) {dy16.astype(np.float64).sum(0)}; dbeta == float16(sum):"
          f" {np.array_equal(db, dy16.astype(np.float64).sum(0).astype(np.float16).astype(np.float64))}; dx dtype {xt.grad.dtype}")

# 3b. dgamma, training and eval, float16 vs float32 dy
for training in (True, False):
    for dyt in (dtypes.float16, dtypes.float32):
        bn = nn.BatchNorm(C)
        xt = Tensor(x16, dtype=dtypes.float16)
        with Context(TRAINING=int(training)):
            y = bn(xt)
            y.backward(Tensor(dy16.astype(np.float32 if dyt == dtypes.float32 else np.float16), dtype=dyt))
        dg = bn.weight.grad.numpy().astype(np.float64)
        if training:
            xh = (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-5)
        else:
            xh = x64 / np.sqrt(1 + 1e-5)
        ref = (dy16.astype(np.float64) * xh).sum(0)
        print(f"training={training!s:5} dy {dyt}: max|dgamma - ref| / |ref| = {np.max(np.abs(dg-ref)/np.abs(ref)):.3g} (float16 unit roundoff 4.9e-4)")

# 4. autodiff of rsqrt at huge variance: d/dv (v + eps)^(-1/2) = -1/2 (v + eps)^(-3/2) underflows
for dt, npdt, S in ((dtypes.float32, np.float32, 2.0 ** 56), (dtypes.float64, np.float64, 2.0 ** 480)):
    vv = Tensor(np.array([S * S], npdt), dtype=dt)
    r = vv.add(1e-5).rsqrt()
    (gv,) = r.sum().gradient(vv)
    e2 = int(np.log2(S))
    print(f"{dt}: v = 2^{2*e2}, rsqrt = {r.numpy()[0]:.3g}, d rsqrt/dv = {gv.numpy()[0]!r} "
          f"(exact -2^{-3*e2-1}; smallest subnormal {np.finfo(npdt).smallest_subnormal:.3g})")
