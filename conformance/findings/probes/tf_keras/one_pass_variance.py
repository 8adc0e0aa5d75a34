"""One-pass variance E[x^2] - E[x]^2: where it comes from and what it does to the suite's cases.

  python one_pass_variance.py xla [CASE_ID]     tf_keras.xla's fused path: FusedBatchNormV3 under
        jit_compile (tf2xla -> xla::BatchNormTraining -> BatchNormExpander) vs the eager CPU kernel,
        on the case's first batch: per-channel batch variance against the exact one (float64 two-pass).
  python one_pass_variance.py torch             Keras 3 torch backend ops.moments on [1,2,3,4] + 1e4
        (run with KERAS_BACKEND=torch)
"""
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
mode = sys.argv[1] if len(sys.argv) > 1 else "xla"

if mode == "xla":
    import tensorflow as tf
    from bn_conformance.case import parse
    from bn_conformance.inputs import make_problem
    cid = sys.argv[2] if len(sys.argv) > 2 else "train_f32_nchw_8x4x16x16_offset1e4_m0.1_e1e-05_k1_aff_trs_s0"
    case = parse(cid)
    pb = make_problem(case)
    fmt = {"nchw": "NCHW", "nhwc": "NHWC", "ncdhw": "NCDHW", "ndhwc": "NDHWC"}[case.layout]
    x = pb.x[0]
    ax = case.channel_axis
    xc = np.moveaxis(x.astype(np.float64), ax, 0).reshape(case.channels, -1)
    exact_mean, exact_var = xc.mean(1), ((xc - xc.mean(1, keepdims=True)) ** 2).mean(1)
    C = case.channels

    def fbn(x):
        r = tf.raw_ops.FusedBatchNormV3(x=x, scale=tf.ones([C]), offset=tf.zeros([C]), mean=tf.constant([], tf.float32),
                                        variance=tf.constant([], tf.float32), epsilon=case.eps, exponential_avg_factor=1.0,
                                        data_format=fmt, is_training=True)
        return r[0], r[4]          # y and reserve_space_2 (the batch variance the op normalised with)

    xt = tf.cast(tf.constant(x), case.dtype)
    y_e, v_e = fbn(xt)
    y_x, v_x = tf.function(fbn, jit_compile=True)(xt)
    print(f"{cid}  XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(f"{'ch':>2} {'mean':>12} {'exact var':>12} {'eager var':>12} {'XLA var':>12} {'kappa':>8} {'XLA NaN y':>9}")
    yx = np.moveaxis(y_x.numpy().astype(np.float64), ax, 0).reshape(C, -1)
    for c in range(C):
        kappa = np.abs(xc[c]).mean() / np.sqrt(exact_var[c] + case.eps)
        print(f"{c:2d} {exact_mean[c]:12.6g} {exact_var[c]:12.6g} {float(v_e[c]):12.6g} {float(v_x[c]):12.6g} "
              f"{kappa:8.3g} {int(np.isnan(yx[c]).sum()):9d}")
elif mode == "torch":
    import keras
    from keras import ops
    assert keras.backend.backend() == "torch", "run with KERAS_BACKEND=torch"
    x = ops.convert_to_tensor(np.array([1.0, 2.0, 3.0, 4.0]) + 1e4, dtype="float32")
    m, v = ops.moments(x, axes=[0])
    print(f"keras {keras.__version__} torch backend: moments([1,2,3,4] + 1e4, float32) = mean {float(m)}, "
          f"variance {float(v)} (exact 1.25)")
    x = ops.convert_to_tensor(np.array([1.0, 2.0, 3.0, 4.0]) + 1e4, dtype="float64")
    m, v = ops.moments(x, axes=[0])
    print(f"  float64 input: variance {float(v)} (ops.moments itself keeps float64; the layer casts to float32 first)")
