"""ONNX Runtime: one BatchNormalization node built in memory with onnx.helper, opsets 9, 14, 15.

Conventions: preset "onnx". Attribute ``momentum`` d = 1 - f (old-value weight: "running_mean
= input_mean * momentum + current_mean * (1 - momentum)",
https://onnx.ai/onnx/operators/onnx__BatchNormalization.html), ``epsilon`` = the case's eps.
The channel is axis 1 (input (N, C, D1, ...)); channels-last layouts are skipped.

Modes. Inference: one output Y. Training: opset 14/15 ``training_mode=1`` with outputs Y,
running_mean, running_var; opset 9 has no attribute, training is five outputs (Y, mean,
var, saved_mean, saved_var). ONNX Runtime's default CPU build runs both: its kernel keys
training on the output count (onnxruntime/core/providers/cpu/nn/batch_norm.h:
``is_train_ = OpKernel::Node().OutputDefs().size() > 1``), measured with 1.31.1. The
"train" scenario feeds each step's running statistics back as the next step's inputs.
Without running statistics (track_running_stats=False) inference uses the training-mode
node and drops its statistics outputs. ONNX has no non-affine form: scale and B are
required inputs, so a non-affine case passes ones and zeros.
Opset 9 training also returns saved_mean (reported as batch_mean); its fifth output is
the inverse standard deviation in ONNX Runtime, not the spec's saved_var (batch_norm.h:
"with opset <= 9 we will be outputting saved_inv_std_dev instead of saved_var"), so
batch_var is not reported.

Types: opset 9 has one type T for every input (float16/float/double), so 16-bit cases
run with 16-bit scale, bias and statistics; opset 14 ties scale/B to X's type and gives
mean/var their own type U; opset 15 gives scale/B (T1) and mean/var (T2) their own types,
so 16-bit X runs with float32 parameters and statistics. Whether ONNX Runtime's CPU
provider has a kernel for a combination is measured once per (opset, types, training) by
building a session; no kernel -> skip with ORT's message.

Gradients: ONNX Runtime inference has no automatic differentiation (gradient graphs need
the separate onnxruntime-training build), so dx/dgamma/dbeta are not produced;
``capabilities`` leaves out "grad" (adapters/protocol.py), so the suite checks the forward
outputs and running statistics only.

Precision: ONNX attributes of type FLOAT are 32-bit (onnx.proto AttributeProto: ``float f
= 2; // float``), so ``epsilon`` and ``momentum`` reach a float64 kernel rounded to
float32 (finding onnx-float32-attributes-float64-model, conformance/findings/onnxruntime.toml).
"""
from __future__ import annotations

from functools import lru_cache

import ml_dtypes
import numpy as np

from .devices import gpus_visible
from .protocol import Problem
from .scenario import Hooks, Step

_NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "float64": np.float64}


def _types(opset: int, dtype: str) -> tuple[str, str, str]:
    """(X, scale/B, mean/var) dtypes as the opset's type constraints allow (module docstring)."""
    pdt = "float32" if dtype in ("float16", "bfloat16") else dtype
    if opset < 14:
        return dtype, dtype, dtype
    if opset < 15:
        return dtype, dtype, pdt
    return dtype, pdt, pdt


_SESSIONS: dict = {}


def _model(opset: int, dtype: str, ndim: int, momentum: float, eps: float, training: bool):
    import onnx
    from onnx import helper
    tx, tp, ts = (helper.np_dtype_to_tensor_dtype(np.dtype(_NP[t])) for t in _types(opset, dtype))
    dims = ["N", "C"] + [f"D{i}" for i in range(ndim - 2)]
    inputs = [helper.make_tensor_value_info("X", tx, dims), helper.make_tensor_value_info("scale", tp, ["C"]),
              helper.make_tensor_value_info("B", tp, ["C"]), helper.make_tensor_value_info("mean", ts, ["C"]),
              helper.make_tensor_value_info("var", ts, ["C"])]
    outs = ["Y"] + (["running_mean", "running_var"] if training else []) + \
        (["saved_mean", "saved_var"] if training and opset < 14 else [])
    attrs = {"epsilon": eps, "momentum": momentum}
    if opset >= 14:
        attrs["training_mode"] = int(training)
    node = helper.make_node("BatchNormalization", ["X", "scale", "B", "mean", "var"], outs, **attrs)
    outputs = [helper.make_tensor_value_info(o, tx if o == "Y" else ts, dims if o == "Y" else ["C"]) for o in outs]
    graph = helper.make_graph([node], "bn", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def _session(*key, device: str = "cpu"):
    import onnxruntime as ort
    if (key, device) not in _SESSIONS:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the kernel as it is
        # one provider only: a node the CUDA provider cannot run fails instead of falling back to the CPU
        _SESSIONS[(key, device)] = ort.InferenceSession(_model(*key).SerializeToString(), so,
                                                        providers=[PROVIDERS[device]])
    return _SESSIONS[(key, device)]


@lru_cache(maxsize=None)
def _kernel_missing(opset: int, dtype: str, training: bool) -> str | None:
    """Measured: None if ONNX Runtime builds and runs the node for these types, else its message."""
    _model(opset, dtype, 2, 0.9, 1e-5, training)   # a ValidationError here is an adapter bug: not caught
    tx, tp, ts = (_NP[t] for t in _types(opset, dtype))
    try:
        _session(opset, dtype, 2, 0.9, 1e-5, training).run(None, {"X": np.ones((2, 1), tx), "scale": np.ones(1, tp), "B": np.zeros(1, tp),
                        "mean": np.zeros(1, ts), "var": np.ones(1, ts)})
    except Exception as exc:  # noqa: BLE001 -- the message is the finding
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    return None


class OnnxRuntime(Hooks):
    framework = "onnxruntime"
    family = "onnx"
    convention = "onnx"
    capabilities = ("forward", "running_stats")   # no gradients: see module docstring

    def __init__(self, opset: int = 15):
        self.opset = opset
        self.name = f"onnxruntime.opset{opset}"

    def version(self) -> str:
        from importlib import metadata
        return metadata.version("onnxruntime")

    def devices(self) -> list[str]:
        """cpu, and cuda where ONNX Runtime was built with the CUDA execution provider
        (onnxruntime-gpu) and a GPU device node exists (adapters/devices.py)."""
        if not gpus_visible():
            return ["cpu"]
        import onnxruntime as ort
        return ["cpu"] + (["cuda"] if "CUDAExecutionProvider" in ort.get_available_providers() else [])

    def supports(self, pb: Problem, device: str) -> str | None:
        if pb.axis != 1:
            return "ONNX BatchNormalization normalises axis 1 (input (N, C, D1, ...), onnx__BatchNormalization.html)"
        if pb.momentum is None:
            return "ONNX BatchNormalization has an exponential moving average only (momentum attribute)"
        if pb.mode == "frozen":
            return "ONNX has no parameter freezing: a graph has no trainable state (training_mode=0 is 'infer')"
        if pb.replicas:
            return "an ONNX graph runs on one device: no cross-replica statistics"
        training = pb.mode == "train" or not pb.track_running_stats
        needed = {training} | ({False} if pb.mode == "train" and pb.track_running_stats else set())  # y_eval
        for tr in sorted(needed):
            missing = _kernel_missing(self.opset, pb.dtype, tr)
            if missing:
                return f"ONNX Runtime CPU has no BatchNormalization kernel for opset {self.opset}, " \
                       f"X {pb.dtype}, training={tr} (measured: {missing})"
        return None

    # -- hooks: the "layer" is the model's running-statistics inputs, fed back after each step --
    def create(self, pb: Problem, device: str):
        tx, tp, ts = (_NP[t] for t in _types(self.opset, pb.dtype))
        # the "framework's initial statistics" are the caller's initialisers: the preset's 0 and 1
        return {"pb": pb, "device": device, "types": (tx, tp, ts), "g": pb.gamma.astype(tp), "b": pb.beta.astype(tp),
                "rm": np.zeros(pb.channels, ts) if pb.track_running_stats else None,
                "rv": np.ones(pb.channels, ts) if pb.track_running_stats else None}

    def load_stats(self, layer, mean, var):
        ts = layer["types"][2]
        layer["rm"], layer["rv"] = np.asarray(mean).astype(ts), np.asarray(var).astype(ts)
        return layer

    def forward(self, layer, x, dy, training):
        pb = layer["pb"]
        tx, _, ts = layer["types"]
        track = layer["rm"] is not None
        batch_stats = training or not track       # no running statistics: the training-mode node
        rm = layer["rm"] if track else np.zeros(pb.channels, ts)
        rv = layer["rv"] if track else np.ones(pb.channels, ts)
        sess = _session(self.opset, pb.dtype, len(pb.shape), 1.0 - pb.momentum, pb.eps, batch_stats,
                        device=layer["device"])
        res = sess.run(None, {"X": np.asarray(x).astype(tx), "scale": layer["g"], "B": layer["b"], "mean": rm,
                              "var": rv})
        step = Step(res[0])
        if training and track:
            layer["rm"], layer["rv"] = res[1], res[2]
        if training and self.opset < 14:
            step.batch_mean = res[3]
        return step, layer

    def stats(self, layer):
        return layer["rm"], layer["rv"]
