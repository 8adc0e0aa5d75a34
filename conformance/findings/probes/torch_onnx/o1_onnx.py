"""ONNX Runtime 1.31.1 CPU, BatchNormalization: (a) float32 attributes for float64 models,
(b) opset 9 float16 (one type T: 16-bit statistics and arithmetic), (c) empty batch in training.
Uses the suite adapter's own model builder (adapters/onnxruntime.py _model/_session)."""
import numpy as np
import onnxruntime as ort
from bn_conformance.adapters import onnxruntime as A

print("onnxruntime", ort.__version__)


def run(opset, dtype, x, g, b, rm, rv, momentum_d, eps, training):
    tx, tp, ts = (A._NP[t] for t in A._types(opset, dtype))
    sess = A._session(opset, dtype, x.ndim, momentum_d, eps, training)
    return sess.run(None, {"X": x.astype(tx), "scale": g.astype(tp), "B": b.astype(tp), "mean": rm.astype(ts),
                           "var": rv.astype(ts)})


rng = np.random.default_rng(0)
C = 3
g, b = np.array([0.7, 1.3, -0.9]), np.array([0.1, -0.2, 0.3])

# (a) float64: eps and momentum reach the kernel as float32
x = rng.standard_normal((16, C)) * 1e-3 + 0.5          # var ~1e-6: eps matters
rm0, rv0 = np.full(C, 0.25), np.full(C, 2.0)
for opset in (9, 14, 15):
    y, rm, rv = run(opset, "float64", x, g, b, rm0, rv0, 0.9, 1e-5, True)[:3]
    mean, var = x.mean(0), x.var(0)
    for eps_used, mom_used, lab in ((1e-5, 0.9, "float64 attributes"),
                                    (float(np.float32(1e-5)), float(np.float32(0.9)), "float32-rounded attributes")):
        yref = g * (x - mean) / np.sqrt(var + eps_used) + b
        rmref = rm0 * mom_used + mean * (1 - mom_used)
        print(f"opset {opset:2d} f64 train vs reference with {lab:27s}: max|y-ref| {np.abs(y-yref).max():.3g}, "
              f"max|running_mean-ref| {np.abs(rm-rmref).max():.3g}")
    yi = run(opset, "float64", x, g, b, rm0, rv0, 0.9, 1e-5, False)[0]
    for eps_used, lab in ((1e-5, "eps 1e-5"), (float(np.float32(1e-5)), "eps float32(1e-5)")):
        print(f"opset {opset:2d} f64 infer vs reference with {lab:18s}: max|y-ref| "
              f"{np.abs(yi - (g*(x-rm0)/np.sqrt(rv0+eps_used)+b)).max():.3g}")
print("float32(1e-5) =", repr(float(np.float32(1e-5))), " float32(0.9) =", repr(float(np.float32(0.9))),
      " exact in float32: eps 1.0, 0.0; momentum weights 0.5, 0.0, 1.0")

# (b) opset 9 float16: statistics and running stats in float16 (and accumulation in float16?)
for opset in (9, 14, 15):
    xs = (rng.standard_normal((16, C)) * 0.5 + 3.0).astype(np.float16)
    try:
        out = run(opset, "float16", xs, g, b, np.zeros(C), np.ones(C), 0.9, 1e-5, True)
    except Exception as e:  # noqa
        print(f"opset {opset} float16 training: {type(e).__name__}: {str(e)[:120]}"); continue
    x64 = xs.astype(np.float64)
    rmref = 0.1 * x64.mean(0)
    print(f"opset {opset:2d} f16 train: output dtypes {[o.dtype.name for o in out]}; running_mean err "
          f"{np.abs(out[1]-rmref).max():.3g} (= {np.abs(out[1]-rmref).max()/np.abs(rmref).max()/2**-11:.2f} u_f16 rel); "
          + (f"saved_mean err {np.abs(out[3]-x64.mean(0)).max():.3g}" if len(out) > 3 else ""))
    # accumulation test: 4096 values of ~60 -> the sum 2.5e5 overflows float16 (max 65504)
    xb = np.full((4096, C), 60.0, np.float16) + (rng.standard_normal((4096, C)) * 0.1).astype(np.float16)
    out = run(opset, "float16", xb, g, b, np.zeros(C), np.ones(C), 0.9, 1e-5, True)
    print(f"          sum overflow probe (4096 x ~60): y finite {np.isfinite(out[0]).all()}, running_mean {out[1]}")

# (c) empty batch, training
for opset in (9, 14, 15):
    for shape in ((0, C), (0, C, 2, 2)):
        out = run(opset, "float32", np.zeros(shape), g, b, np.full(C, 0.25), np.full(C, 2.0), 0.9, 1e-5, True)
        print(f"opset {opset:2d} empty batch {shape}: running_mean {out[1]}, running_var {out[2]}")
    # spatial size 0 with N > 0
    out = run(opset, "float32", np.zeros((2, C, 0)), g, b, np.full(C, 0.25), np.full(C, 2.0), 0.9, 1e-5, True)
    print(f"opset {opset:2d} (2, C, 0): running_mean {out[1]}")
