"""TensorFlow without Keras: the stateless ops and the fused kernel.

Variants
  tf.nn      tf.nn.moments + tf.nn.batch_normalization, running statistics kept in
             tf.Variables by tf.compat.v1.train.assign_moving_average(zero_debias=False);
             gradients by tf.GradientTape. Preset "tensorflow_nn".
  tf.nn.xla  the same step inside tf.function(jit_compile=True), traced once per
             shape/dtype/config (tf.function's own trace cache; the function is module-level).
  tf.fused   tf.raw_ops.FusedBatchNormV3, the op behind tf.compat.v1.nn.fused_batch_norm
             (tensorflow/python/ops/nn_impl.py fused_batch_norm is a thin shim that returns
             outputs 0..2 of gen_nn_ops.fused_batch_norm_v3 with the same arguments); the
             raw op also gives reserve_space_1/2, the batch mean and variance the kernel
             normalised with (CPU kernel: biased variance, `saved_batch_var = batch_variance`,
             tensorflow/core/kernels/fused_batch_norm_op.cc), returned as batch_mean/batch_var.
             Preset "tensorflow_fused".

Conventions used here:
  * momentum: the case's new-batch weight f. assign_moving_average takes the old-value weight
    (decay), so it gets d = 1 - f; it computes `variable -= (variable - value) * (1 - decay)`
    (tensorflow/python/training/moving_averages.py assign_moving_average). The fused op's
    exponential_avg_factor is the new-batch weight and gets f itself (nn_impl.py docstring:
    "(1 - exponential_avg_factor) * mean + exponential_avg_factor * batch_mean").
  * 16-bit inputs (mixed precision as Keras users run it: float32 variables read in the
    compute dtype). tf.nn: gamma/beta/running statistics are float32 and cast to the input
    dtype when read; tf.nn.moments runs on the input dtype (it upcasts float16 only, nn_impl.py
    moments); the batch statistics are cast to float32 before the moving average.
    tf.fused: scale/offset/mean/variance are float32 (the op's U type is float only:
    REGISTER_OP("FusedBatchNormV3"), tensorflow/core/ops/nn_ops.cc), x stays 16-bit.
  * track_running_stats=False: the caller keeps no averages and normalises with batch
    statistics in every mode (a stateless API expresses this directly).
  * Frozen mode: skipped; a stateless op has no freeze, the caller passes statistics.
The scenario is adapters/scenario.py's; the "layer" here is the caller's variables.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quiet import (C++ INFO/WARNING/ERROR logs)

from functools import lru_cache
from importlib import metadata

import numpy as np

from .devices import gpus_visible
from .protocol import Problem
from .scenario import COMPILES, Hooks, Step

_FUSED_FORMAT = {"nchw": "NCHW", "nhwc": "NHWC", "ncdhw": "NCDHW", "ndhwc": "NDHWC"}


@lru_cache(maxsize=None)
def _tf():
    import tensorflow as tf
    return tf


def _in(a, dtype: str):
    """A float array (values exact in dtype) as a TF tensor of dtype."""
    tf = _tf()
    return tf.cast(tf.constant(np.array(a)), getattr(tf, dtype))


class _Base(Hooks):
    framework = "tensorflow"
    family = "tensorflow"

    def version(self) -> str:
        return metadata.version("tensorflow")

    def devices(self) -> list[str]:
        if not gpus_visible():          # no GPU device node: do not import TensorFlow to ask
            return ["cpu"]
        return ["cpu"] + (["cuda"] if _tf().config.list_physical_devices("GPU") else [])

    def _dev(self, device: str) -> str:
        return "/GPU:0" if device == "cuda" else "/CPU:0"

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.momentum is None and pb.track_running_stats:
            return ("cumulative average (momentum=None) cannot be expressed: the moving average takes a fixed "
                    "decay (tf.compat.v1.train.assign_moving_average) / exponential_avg_factor (fused_batch_norm)")
        if pb.mode == "frozen":
            return "stateless API: there is no layer to freeze; the caller chooses which statistics to pass"
        if pb.replicas:
            return "stateless ops: cross-replica statistics are the caller's (the Keras layers' synchronized=True)"
        return None

    def to_numpy(self, t) -> np.ndarray:
        return np.asarray(_tf().cast(t, _tf().float64).numpy())

    def run(self, pb: Problem, device: str) -> dict[str, np.ndarray]:
        with _tf().device(self._dev(device)):
            return super().run(pb, device)


# --------------------------------------------------------------------------------------------
# tf.nn.moments + tf.nn.batch_normalization
# --------------------------------------------------------------------------------------------

def _nn_step(x, dy, gamma, beta, rm, rv, training, eps, axis):
    """One forward + backward. gamma/beta/rm/rv are tensors of the parameter dtype (or None);
    rm/rv are the statistics used when not training. Returns y, dx, dgamma, dbeta and the
    flattened mean and variance that were used."""
    tf = _tf()
    nd = len(x.shape)
    axes = [i for i in range(nd) if i != axis]
    bshape = [1] * nd
    bshape[axis] = -1
    watched = [x] + [t for t in (gamma, beta) if t is not None]
    with tf.GradientTape() as tape:
        tape.watch(watched)
        # 16-bit inputs: all math in float32, as TF's own layer does with these ops
        # (tf_keras/src/layers/normalization/batch_normalization.py call: "Do all math in
        # float32 if given 16-bit inputs for numeric stability"); y is cast back.
        xc = tf.cast(x, tf.float32) if x.dtype in (tf.float16, tf.bfloat16) else x
        scale = None if gamma is None else tf.reshape(gamma, bshape)
        offset = None if beta is None else tf.reshape(beta, bshape)
        if training:
            mean, var = tf.nn.moments(xc, axes, keepdims=True)
        else:
            mean, var = tf.reshape(rm, bshape), tf.reshape(rv, bshape)
        # eps may be a float64 tensor (the XLA variant, so one trace serves every eps): rounded to the
        # statistics' dtype once, as converting the Python float would round it
        eps = tf.cast(eps, var.dtype) if isinstance(eps, tf.Tensor) else eps
        y = tf.cast(tf.nn.batch_normalization(xc, mean, var, offset, scale, eps), x.dtype)
    grads = tape.gradient(y, watched, output_gradients=dy)
    dg, db = (grads[1], grads[2]) if gamma is not None else (None, None)
    return y, grads[0], dg, db, tf.reshape(mean, [-1]), tf.reshape(var, [-1])


def _nn_update(rm_var, rv_var, mean, var, f):
    """Moving averages as the TF docs show them: assign_moving_average(variable, value, decay,
    zero_debias=False) does `decay = convert_to_tensor(1.0 - decay)`, then
    `variable.assign_sub((variable - value) * decay)` (tensorflow/python/training/
    moving_averages.py). TF 2.21 exports that function only as
    tf.__internal__.train.assign_moving_average (`@tf_export(..., v1=[])`; measured:
    tf.compat.v1.train has no assign_moving_average), so a TF2 user writes the same two
    lines; they are written here with the weight 1 - d formed in Python double and converted
    to the variable's dtype. TensorFlow's own function converts 1 - decay to a float32 tensor
    first (measured: a float64 variable gets the weight 0.10000000149 for 0.1), which the
    tf-keras layer inherits (finding tf-keras-float64-momentum-rounded-to-float32); this
    adapter does not, so float64 cases here test the moments and the normalisation, not that
    rounding. No zero-debiasing: the variables start at 0 and 1, not at zero."""
    tf = _tf()
    d = 1.0 - f            # in double, whether f is a Python float or a float64 tensor (XLA variant)
    for v, value in ((rm_var, mean), (rv_var, var)):
        w = tf.cast(1.0 - d, v.dtype) if isinstance(f, tf.Tensor) else tf.constant(1.0 - d, v.dtype)
        v.assign_sub((v - tf.cast(value, v.dtype)) * w)


def _nn_train_step(x, dy, gamma, beta, rm_var, rv_var, eps, axis, f):
    y, dx, dg, db, mean, var = _nn_step(x, dy, gamma, beta, None, None, True, eps, axis)
    if rm_var is not None:
        _nn_update(rm_var, rv_var, mean, var, f)
    return y, dx, dg, db


@lru_cache(maxsize=None)
def _xla_fns():
    tf = _tf()
    # Module-level, created once: tf.function keys its traces on shapes/dtypes and on Python
    # values, so eps and f arrive as float64 tensors (TfNn.forward) and XLA compiles once per
    # shape, dtype, axis and structure, not once per eps and momentum.
    return (tf.function(_nn_train_step, jit_compile=True),
            tf.function(_nn_step, jit_compile=True))


class TfNn(_Base):
    name = "tf.nn"
    convention = "tensorflow_nn"
    jit = False

    def _fns(self):
        if self.jit:
            return _xla_fns()
        return _nn_train_step, _nn_step

    def create(self, pb: Problem, device: str):
        tf, pdt = _tf(), pb.param_dtype
        layer = {"pb": pb, "gamma": _in(pb.gamma, pdt) if pb.affine else None,
                 "beta": _in(pb.beta, pdt) if pb.affine else None, "rm": None, "rv": None}
        if pb.track_running_stats:   # the caller's variables, initialised as Keras does: zeros and ones
            layer["rm"] = tf.Variable(_in(np.zeros(pb.channels), pdt), trainable=False)
            layer["rv"] = tf.Variable(_in(np.ones(pb.channels), pdt), trainable=False)
        return layer

    def load_stats(self, layer, mean, var):
        pdt = layer["pb"].param_dtype
        layer["rm"].assign(_in(mean, pdt))
        layer["rv"].assign(_in(var, pdt))
        return layer

    def forward(self, layer, x, dy, training):
        pb = layer["pb"]
        train_fn, step_fn = self._fns()
        xt = _in(x, pb.dtype)
        dyt = _in(dy if dy is not None else np.zeros(pb.shape), pb.dtype)
        args = (layer["gamma"], layer["beta"], layer["rm"], layer["rv"])
        call = COMPILES.traced if self.jit else (lambda f, *a: f(*a))
        eps, f = pb.eps, pb.momentum
        if self.jit:
            tf = _tf()
            eps, f = tf.constant(eps, tf.float64), (None if f is None else tf.constant(f, tf.float64))
        if training:
            y, dx, dg, db = call(train_fn, xt, dyt, *args, eps, pb.axis, f)
        else:   # inference: the moving averages, or the batch's statistics when the caller keeps none
            y, dx, dg, db = call(step_fn, xt, dyt, *args, layer["rm"] is None, eps, pb.axis)[:4]
        return Step(y, dx, dg, db), layer

    def stats(self, layer):
        return layer["rm"].value(), layer["rv"].value()


class TfNnXla(TfNn):
    name = "tf.nn.xla"
    jit = True


# --------------------------------------------------------------------------------------------
# FusedBatchNormV3
# --------------------------------------------------------------------------------------------

class TfFused(_Base):
    name = "tf.fused"
    convention = "tensorflow_fused"

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.layout not in _FUSED_FORMAT:
            return ("fused_batch_norm takes 4-D or 5-D input in NHWC/NCHW/NDHWC/NCDHW "
                    "(nn_impl.py fused_batch_norm docstring; FusedBatchNormV3 data_format attr)")
        if pb.dtype == "float64":
            return ("FusedBatchNormV3 has no float64 kernel: attr T in {half, bfloat16, float}, U in {float} "
                    "(tensorflow/core/ops/nn_ops.cc REGISTER_OP(\"FusedBatchNormV3\"); measured: "
                    "InvalidArgumentError, TF 2.21)")
        return super().supports(pb, device)

    def create(self, pb: Problem, device: str):
        # the op needs scale/offset even without affine: ones/zeros, as tf-keras passes
        # (tf_keras/src/layers/normalization/batch_normalization.py _fused_batch_norm)
        layer = {"pb": pb, "gamma": _in(pb.gamma, "float32"), "beta": _in(pb.beta, "float32")}
        if pb.track_running_stats:
            layer["rm"], layer["rv"] = _in(np.zeros(pb.channels), "float32"), _in(np.ones(pb.channels), "float32")
        else:
            layer["rm"] = layer["rv"] = None
        return layer

    def load_stats(self, layer, mean, var):
        layer["rm"], layer["rv"] = _in(mean, "float32"), _in(var, "float32")
        return layer

    def forward(self, layer, x, dy, training):
        tf, pb = _tf(), layer["pb"]
        track = layer["rm"] is not None
        empty = tf.constant([], tf.float32)      # as nn_impl.fused_batch_norm passes "no statistics"
        xt = _in(x, pb.dtype)
        dyt = _in(dy if dy is not None else np.zeros(pb.shape), pb.dtype)
        is_training = training or not track       # no running statistics: batch statistics in every mode
        factor = pb.momentum if (training and track) else 1.0
        g, b = layer["gamma"], layer["beta"]
        with tf.GradientTape() as tape:
            tape.watch([xt, g, b])
            r = tf.raw_ops.FusedBatchNormV3(x=xt, scale=g, offset=b, mean=layer["rm"] if track else empty,
                                            variance=layer["rv"] if track else empty, epsilon=pb.eps,
                                            exponential_avg_factor=factor, data_format=_FUSED_FORMAT[pb.layout],
                                            is_training=is_training)
        dx, dg, db = tape.gradient(r[0], [xt, g, b], output_gradients=dyt)
        step = Step(r[0], dx, dg, db)
        if training and track:
            layer["rm"], layer["rv"] = r[1], r[2]   # outputs 1, 2: the updated running mean/variance
        if training and x.size:
            # reserve_space_1/2: the batch statistics the kernel normalised with (raw_ops docs:
            # "computed batch mean/variance"; CPU kernel biased variance). Not for an empty batch:
            # the CPU kernel then only fills outputs 1, 2 with NaN and returns, leaving the reserve
            # spaces unwritten (fused_batch_norm_op.cc FusedBatchNorm<CPUDevice, T, U, true>:
            # "If input is empty, return NaN mean/variance").
            step.batch_mean, step.batch_var = r[3], r[4]
        return step, layer

    def stats(self, layer):
        return layer["rm"], layer["rv"]
