"""Synthetic results folders for tests and demos: no framework needed.

``write_sample(dir)`` writes schema version 2 part files, as an interrupted multi-machine
session would leave them:

  results.cpu.jsonl   run "run-cpu": torch, tensorflow, keras, flax, dm-haiku and an
                      external adapter on "cpu"; findings in the header, fingerprints,
                      triggered and stale findings, failures no finding explains; end
                      record "complete"
  results.gpu.jsonl   run "run-gpu": the torch adapters on "cuda" (selection torch.*);
                      end record "partial"
  results.ort.jsonl   run "run-ort": ONNX Runtime on another machine, no end record (an
                      interrupted run) and a last line cut mid-write

``write_sample(dir, version=1)`` writes the schema version 1 sample (checks carry
``deviation`` ids, no finding texts, no repro or inputs) for the compatibility test.
``hostile=True`` adds an adapter, a finding, versions, errors and output made of markup.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path

from bn_conformance.results import SCHEMA, SUITE_VERSION

HOSTILE = "torch.<script>alert(\"pwn\")</script>'\""
HOSTILE_ERROR = "RuntimeError: <script>alert('err')</script> \"quoted\" & <b>bold</b>"
HOSTILE_VERSION = "2.0<script>alert('version')</script>"
HOSTILE_FRAMEWORK = "evil<svg onload=alert('fw')>"
HOSTILE_TITLE = "<img src=x onerror=alert('title')> silently <b>wrong</b>"
HOSTILE_FINDING = "hostile-<i>finding</i>\"'"
HOSTILE_EVIDENCE = ("see javascript:alert('js') and https://example.org/issue\"onmouseover=\"alert('attr') "
                    "and <script>alert('evidence')</script>")
HOSTILE_OUTPUT = "<iframe src=\"https://evil.example/\"></iframe> printed by the adapter"

CONVENTION = {"name": "pytorch", "title": "PyTorch torch.nn.BatchNorm", "channel_axis": 1, "momentum_form": "new",
              "momentum_default": 0.1, "schedule": "ema", "momentum_none": "cumulative", "estimator": "unbiased",
              "eps_default": 1e-5, "init_mean": 0.0, "init_var": 1.0, "frozen": "train", "one_value": "raises",
              "sources": {"estimator": "https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html (unbiased)"}}


def _preset(name, title, **kw):
    base = {k: v for k, v in CONVENTION.items() if k not in ("name", "title", "sources")}
    return {"name": name, "title": title} | base | kw | {"sources": {}}


CONVENTIONS = {
    "pytorch": CONVENTION,
    "tensorflow_nn": _preset("tensorflow_nn", "tf.nn.batch_normalization with tf.nn.moments", channel_axis=-1,
                             momentum_form="old", momentum_default=0.99, estimator="biased", eps_default=1e-3,
                             one_value="defined"),
    "keras3": _preset("keras3", "keras.layers.BatchNormalization (Keras 3)", channel_axis=-1, momentum_form="old",
                      momentum_default=0.99, estimator="biased", eps_default=1e-3, one_value="defined"),
    "flax": _preset("flax", "flax.linen.BatchNorm", channel_axis=-1, momentum_form="old", momentum_default=0.99,
                    estimator="biased", one_value="defined"),
    "haiku": _preset("haiku", "haiku.BatchNorm", channel_axis=-1, momentum_form="old", schedule="debiased",
                     estimator="biased", one_value="defined"),
    "onnx": _preset("onnx", "ONNX BatchNormalization", momentum_form="old", momentum_default=0.9, estimator="biased",
                    one_value="defined"),
}

# adapter -> (framework, version, convention, origin)
ADAPTERS = {
    "torch.nn": ("torch", "2.4.0", "pytorch", "built-in"),
    "torch.functional": ("torch", "2.4.0", "pytorch", "built-in"),
    "tf.nn": ("tensorflow", "2.16.1", "tensorflow_nn", "built-in"),
    "keras3.jax": ("keras", "3.3.3", "keras3", "built-in"),
    "flax.linen.jit": ("flax", "0.8.4", "flax", "built-in"),
    "haiku.jit": ("dm-haiku", "0.0.12", "haiku", "built-in"),
    "mybackend.bn": ("mybackend", "0.1.dev0", "pytorch", "examples/mybackend.py:BatchNorm"),
    "onnxruntime.opset15": ("onnxruntime", "1.18.0", "onnx", "built-in"),
}

C = "m0.1_e1e-05"
CASES = [f"train_{dt}_nchw_2x3x2x2_{dist}_{C}_k3_aff_trs_s0"
         for dt in ("f32", "f16") for dist in ("normal", "offset1e2", "offset1e4")]
F64 = f"train_f64_nc_16x5_normal_{C}_k2_aff_trs_s0"
BF16_BARE = f"train_bf16_ncl_4x4x5_offset1e1_{C}_k1_noaff_notrs_s5"
EMPTY = f"train_f32_nc_0x3_normal_{C}_k2_aff_trs_s0"
EPS0 = "train_f32_nchw_2x3x4x5_normal_m0.1_e0.0_k1_aff_trs_s0"
ONE = f"train_f32_nc_1x3_normal_{C}_k1_aff_notrs_s0"
NAN = f"train_f32_nchw_2x3x2x2_nan_{C}_k3_aff_trs_s0"
HEAVY = f"train_f32_nchw_2x3x2x2_heavy_{C}_k3_aff_trs_s3"
ALL_CASES = CASES + [F64, BF16_BARE, EMPTY, EPS0, ONE, NAN, HEAVY]


def _parts(cid: str) -> dict:
    p = cid.split("_")
    shape = [int(s) for s in p[3].split("x")]
    c = shape[1] if p[2] in ("nc", "ncl", "nchw", "ncdhw") else shape[-1]
    n = 1
    for s in shape:
        n *= s
    n //= max(c, 1)
    eps = float(p[6][1:])
    return {"mode": p[0], "dtype": {"f16": "float16", "bf16": "bfloat16", "f32": "float32", "f64": "float64"}[p[1]],
            "layout": p[2], "shape": shape, "channels": c, "n": n, "dist": p[4], "eps": eps, "steps": int(p[7][1:]),
            "affine": p[8] == "aff", "track": p[9] == "trs", "offset": float(p[4][6:]) if p[4].startswith("offset") else 1.0}


# -- findings ---------------------------------------------------------------------------------

def _finding(fid, title, severity, adapters, versions, checks, when, reason, evidence, source, envelope=None):
    return {"id": fid, "title": title, "severity": severity, "adapters": adapters, "versions": versions,
            "devices": ["*"], "checks": checks, "when": when, "reason": reason, "evidence": evidence,
            "envelope": envelope or {"max_ratio": None, "pattern": "any"}, "source": source}


FINDINGS = {f["id"]: f for f in (
    _finding("torch-eps-zero-training-raises", "eps = 0 raises in training mode", "low",
             ["torch.nn", "torch.functional", "torch.*.compile"], ">=2.0", ["outcome"],
             [{"eps": 0.0, "mode": ["train", "frozen"]}],
             "With eps = 0 the reference defines training-mode batch norm for any non-constant batch; PyTorch refuses "
             "eps <= 0 whenever batch statistics are used.",
             "torch/nn/functional.py batch_norm: 'if training and eps <= 0.0: raise ValueError'; "
             "https://github.com/pytorch/pytorch/blob/v2.4.0/torch/nn/functional.py#L2450", "torch.toml"),
    _finding("torch-16bit-no-params-computes-in-input-precision",
             "16-bit inputs without weight or running statistics are normalised in 16-bit precision", "medium",
             ["torch.nn", "torch.functional"], ">=2.0", ["y", "dx", "y_eval"],
             [{"dtype": ["float16", "bfloat16"], "affine": False, "track": False}],
             "The CPU kernel picks its float32 statistics path from the dtype of the weight, bias and running "
             "statistics; with none of them it runs entirely in the input dtype.",
             "aten/src/ATen/native/Normalization.cpp batch_norm_cpu: mixed_type is false when none is defined; "
             "https://github.com/pytorch/pytorch/issues/124524", "torch.toml", {"max_ratio": 1000.0, "pattern": "finite"}),
    _finding("torch-one-value-notrs", "One value per channel without running statistics raises", "low",
             ["torch.nn", "torch.functional"], ">=2.0", ["outcome"], [{"N": 1, "track": False}],
             "Training with one value per channel and no running statistics raised 'Expected more than 1 value per "
             "channel' in older versions.", "https://github.com/pytorch/pytorch/issues/4534", "torch.toml"),
    _finding("tf-nn-empty-batch-nan", "An empty batch turns the moving statistics into NaN", "low",
             ["tf.nn", "tf.nn.xla"], ">=2.12", ["running_mean", "running_var"], [{"N": 0}],
             "tf.nn.moments of an empty batch is 0/0 = NaN, and the moving-average update propagates it.",
             "tensorflow/python/ops/nn_impl.py moments; measured with tf 2.16.1", "tensorflow.toml",
             {"max_ratio": None, "pattern": "nonfinite"}),
    _finding("keras3-float64-computed-in-float32", "float64 layers compute their statistics in float32", "high",
             ["keras3.*"], ">=3.0", ["y", "dx", "dgamma", "dbeta", "running_*", "y_eval"], [{"dtype": "float64"}],
             "Keras 3 casts float64 inputs to the layer's compute dtype float32 unless dtype='float64' is passed "
             "to the layer, so float64 users silently get float32 accuracy.",
             "keras/src/layers/normalization/batch_normalization.py call(); https://github.com/keras-team/keras/issues/19512",
             "keras3.toml"),
    _finding("flax-fast-variance", "Variance as E[x²] − E[x]² loses precision on offset data", "medium",
             ["flax.linen.*", "flax.nnx.*"], ">=0.7", ["y", "dx", "running_var", "y_eval", "fingerprint.variance"],
             [{"offset": ">= 1e3"}, {"dtype": ["float16", "bfloat16"], "offset": ">= 1e2"}],
             "flax computes the batch variance with the one-pass formula mean(x²) − mean(x)² (use_fast_variance=True "
             "by default): catastrophic cancellation when |mean| >> std.",
             "flax/linen/normalization.py _compute_stats use_fast_variance; https://github.com/google/flax/pull/3566",
             "flax.toml"),
    _finding("haiku-one-pass-variance", "One-pass variance: large errors on inputs with a large mean", "medium",
             ["haiku.*"], ">=0.0.10", ["y", "dx", "running_var", "y_eval", "fingerprint.variance"],
             [{"offset": ">= 1e3"}],
             "haiku.BatchNorm computes var = E[x²] − E[x]².",
             "haiku/_src/batch_norm.py __call__: var = mean_of_squares - jnp.square(mean)", "haiku.toml"),
)}


def _hostile_finding() -> dict:
    return _finding(HOSTILE_FINDING, HOSTILE_TITLE, "high", [HOSTILE], ">=0", ["<b>y</b>", "y"],
                    [{"<b>dtype</b>": "<i>float32</i>", "not_offset": "> 1e3"}],
                    "reason <script>alert('reason')</script>", HOSTILE_EVIDENCE, "<evil>.toml")


def _covers(fid: str, cid: str) -> bool:
    p = _parts(cid)
    return {
        "torch-eps-zero-training-raises": p["eps"] == 0.0 and p["mode"] in ("train", "frozen"),
        "torch-16bit-no-params-computes-in-input-precision": p["dtype"] in ("float16", "bfloat16")
        and not p["affine"] and not p["track"],
        "torch-one-value-notrs": p["shape"][0] == 1 and not p["track"],
        "tf-nn-empty-batch-nan": p["shape"][0] == 0,
        "keras3-float64-computed-in-float32": p["dtype"] == "float64",
        "flax-fast-variance": p["offset"] >= 1e3 or (p["dtype"] in ("float16", "bfloat16") and p["offset"] >= 1e2),
        "haiku-one-pass-variance": p["offset"] >= 1e3,
        HOSTILE_FINDING: p["dtype"] == "float32" and p["offset"] <= 1e3,
    }.get(fid, False)


def _applies(f: dict, adapter: str) -> bool:
    import fnmatch
    return any(fnmatch.fnmatchcase(adapter, pat) for pat in f["adapters"])


# -- records ----------------------------------------------------------------------------------

def header(run_id: str, device: str, adapters: list[str], version: str | None = None, schema_version: int = 2,
           cpu: str = "Test CPU", findings: dict | None = None, selection: dict | None = None,
           hostile: bool = False) -> dict:
    h = {"type": "run", "schema": SCHEMA, "schema_version": schema_version, "run_id": run_id,
         "suite_version": SUITE_VERSION if schema_version == 2 else "0.1.0", "started": f"2025-01-01T00:0{len(run_id) % 10}:00Z",
         "platform": {"system": "Linux-test", "python": "3.11.7", "cpu": cpu, "machine": "x86_64",
                      "devices": {device: "Test GPU" if device != "cpu" else cpu}},
         "adapters": {}, "unavailable": {"tf_keras": "ImportError: No module named 'tf_keras'"},
         "conventions": {}}
    for a in adapters:
        fw, v, conv, origin = ADAPTERS.get(a, (HOSTILE_FRAMEWORK if hostile else "torch", HOSTILE_VERSION if hostile
                                               else "2.4.0", "pytorch", "user.py:Evil"))
        h["adapters"][a] = {"name": a, "framework": fw, "version": version or v, "convention": conv,
                            "devices": ["cpu", "cuda"] if fw == "torch" else ["cpu"], "origin": origin}
        h["conventions"][conv] = CONVENTIONS[conv]
    if schema_version == 2:
        h["platform"]["environment"] = {"OMP_NUM_THREADS": "2", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2 <b>x</b>"}
        h["findings"] = findings or {}
        h["selection"] = selection or {"adapters": [], "devices": [], "cases": [], "keyword": "", "markers": "",
                                       "all_adapters": False, "partial": False}
    return h


def check(name: str, family: str, verdict: str = "pass", ratio: float | str | None = 0.01, **kw) -> dict:
    c = {"name": name, "family": family, "verdict": verdict, "max_abs": None, "max_rel": None, "max_ulp": None,
         "ratio": ratio, "worst_index": None, "expected": None, "actual": None, "tolerance": None, "detail": ""}
    if ratio is not None and family != "parity":
        c.update(max_abs=1e-7, max_rel=1e-7, max_ulp=1.0, worst_index=[0, 1, 0, 0], expected=0.5, actual=0.5000001,
                 tolerance=1e-5)
    c.update(kw)
    return c


def passing_checks() -> list[dict]:
    return [check("outcome", "parity", ratio=None), check("y", "forward"),
            check("dx", "grad", ratio=0.2), check("y_eval", "eval", ratio=0.05),
            check("running_mean", "running", ratio=0.03, worst_index=[2, 1]),
            check("running_var", "running", ratio=0.1, worst_index=[1, 0]),
            check("grad_sum_zero", "property", ratio=0.001)]


def case(run_id: str, adapter: str, device: str, case_id: str, verdict: str = "pass", checks=None, **kw) -> dict:
    fw, v, conv, _ = ADAPTERS.get(adapter, ("torch", "2.4.0", "pytorch", ""))
    r = {"type": "case", "run_id": run_id, "case_id": case_id, "adapter": adapter, "device": device,
         "framework": fw, "version": v, "convention": conv, "verdict": verdict,
         "checks": checks if checks is not None else passing_checks(),
         "error": None, "skip_reason": None, "timings": {"adapter_s": 0.001}}
    r.update(kw)
    return r


def repro(case_id: str, adapter: str, device: str) -> dict:
    q = shlex.quote
    return {"lang": "shell",
            "code": f"pytest conformance/ --case={q(case_id)} --adapter={q(adapter)} --device={q(device)}\n"
                    f"python -m bn_conformance.repro {q(case_id)} --adapter={q(adapter)} --device={q(device)} "
                    f"--save={q(case_id + '.npz')}"}


def inputs(case_id: str) -> dict:
    p = _parts(case_id)
    size = p["n"] * p["channels"] * p["steps"]
    off = p["offset"] if p["dist"].startswith("offset") else 0.0
    nonfinite = 1 if p["dist"] == "nan" else 0
    return {"shape": "x".join(map(str, p["shape"])), "steps": p["steps"], "dtype": p["dtype"], "layout": p["layout"],
            "channels": p["channels"], "n": p["n"], "dist": p["dist"],
            "dist_text": {"normal": "standard normal", "nan": "normal with one NaN",
                          "heavy": "Student t, 2 degrees of freedom"}.get(p["dist"], f"normal, mean {off:g} x its spread"),
            "mean_range": [off - 0.31, off + 0.27] if size else None, "std_range": [0.84, 1.12] if size else None,
            "min": off - 2.1 if size else None, "max": off + 2.3 if size else None, "nonfinite": nonfinite,
            "size": size, "momentum": 0.1, "eps": p["eps"], "affine": p["affine"], "track": p["track"],
            "mode": p["mode"]}


def _judged(run_id: str, adapter: str, device: str, cid: str, findings: dict, checks: list[dict],
            attribute: dict) -> tuple[str, list[dict], list[dict]]:
    """Attribute failing checks named in ``attribute`` (check name -> finding id) and list every
    finding that covers the case: (verdict, checks, findings)."""
    listed = []
    for fid, f in findings.items():
        if _applies(f, adapter) and _covers(fid, cid):
            trig = False
            for c in checks:
                if c["verdict"] == "fail" and attribute.get(c["name"]) == fid:
                    c["verdict"], c["finding"], trig = "xfail", fid, True
                    c["detail"] = (c.get("detail") or "") + f" (finding {fid})"
            listed.append({"id": fid, "triggered": trig})
    order = ("pass", "refused", "skip", "xfail", "fail", "raised")
    verdict = max((c["verdict"] for c in checks), key=lambda v: order.index(v) if v in order else 9, default="pass")
    return verdict, checks, listed


def _bad(name, family, ratio, **kw):
    return check(name, family, "fail", ratio, max_abs=0.12, max_rel=3e-3, max_ulp=410.0, worst_index=[2, 1, 0, 1],
                 expected=40.1, actual=40.22, tolerance=3.2e-3,
                 detail=kw.pop("detail", f"|error| exceeds tolerance by {ratio}x"), **kw)


def _case_v2(run_id: str, adapter: str, device: str, cid: str, findings: dict, hostile: bool) -> dict:
    """One case of the v2 sample: what the synthetic adapter does on it."""
    p = _parts(cid)
    fw = ADAPTERS.get(adapter, ("?",))[0]
    checks = passing_checks()
    attribute: dict = {}
    kw: dict = {}
    if fw == "torch" and cid == EPS0:
        checks = [check("outcome", "parity", "fail", None,
                        detail="reference defines a result; implementation raised ValueError: batch_norm eps must be positive")]
        attribute = {"outcome": "torch-eps-zero-training-raises"}
        kw["error"] = "ValueError: batch_norm eps must be positive during training"
    elif fw == "torch" and cid == BF16_BARE:
        checks[2] = _bad("dx", "grad", 256.0)
        checks[1] = _bad("y", "forward", 12.5)
        attribute = {"dx": "torch-16bit-no-params-computes-in-input-precision",
                     "y": "torch-16bit-no-params-computes-in-input-precision"}
    elif adapter == "torch.nn" and device == "cuda" and cid == CASES[5]:
        checks[5] = _bad("running_var", "running", 37.5, detail="|error| 0.12 exceeds tolerance at [2, 1] by 37.5x")
    elif fw == "tensorflow" and cid == EMPTY:
        checks[4] = _bad("running_mean", "running", "inf", detail="3 element(s) differ in finiteness")
        checks[5] = _bad("running_var", "running", "inf", detail="3 element(s) differ in finiteness")
        attribute = {"running_mean": "tf-nn-empty-batch-nan", "running_var": "tf-nn-empty-batch-nan"}
    elif fw == "tensorflow" and cid == HEAVY:
        msg = HOSTILE_ERROR if hostile else "InvalidArgumentError: Input to reshape is a tensor with 0 values"
        checks = [check("outcome", "parity", "raised", None, detail=f"reference defines a result; implementation raised {msg}")]
        kw["error"] = msg
    elif fw == "keras" and p["dtype"] == "float64":
        checks[1] = _bad("y", "forward", 3.1e8)
        checks[2] = _bad("dx", "grad", 2.2e8)
        checks[5] = _bad("running_var", "running", 4.0e7)
        attribute = {n: "keras3-float64-computed-in-float32" for n in ("y", "dx", "running_var")}
    elif fw in ("flax", "dm-haiku") and p["offset"] >= 1e3:
        fid = "flax-fast-variance" if fw == "flax" else "haiku-one-pass-variance"
        checks[1] = _bad("y", "forward", 850.0 if p["dtype"] == "float32" else 95.0)
        checks[5] = _bad("running_var", "running", 1.2e4)
        attribute = {"y": fid, "running_var": fid}
    elif fw == "mybackend" and cid == NAN:
        checks[1] = _bad("y", "forward", "inf", detail="1 element(s) differ in finiteness")
        kw["output"] = "mybackend: warning: NaN in input, falling back to the reference kernel\n"
    elif fw == "mybackend" and cid == CASES[2]:
        checks[5] = _bad("running_var", "running", 4.7)
    elif fw == "onnxruntime" and cid == F64:
        checks[1] = _bad("y", "forward", 2.5e8, detail="float64 computed in float32")
    elif adapter == HOSTILE and cid == NAN:
        checks = [check("outcome", "parity", "raised", None, detail="raised " + HOSTILE_ERROR)]
        kw["error"], kw["output"] = HOSTILE_ERROR, HOSTILE_OUTPUT
    elif adapter == HOSTILE and cid == CASES[0]:
        checks[1] = _bad("y", "forward", 3.0)
        attribute = {"y": HOSTILE_FINDING}
    if fw == "torch" and cid == ONE:      # the stale finding: covered, no longer triggers
        checks = [check("outcome", "parity", ratio=None), check("y", "forward")]
    verdict, checks, listed = _judged(run_id, adapter, device, cid, findings, checks, attribute)
    rec = case(run_id, adapter, device, cid, verdict, checks, findings=listed, **kw)
    if adapter == HOSTILE:
        rec["framework"], rec["version"] = HOSTILE_FRAMEWORK, HOSTILE_VERSION
    if verdict not in ("pass", "refused", "skip"):
        rec["repro"] = repro(cid, adapter, device)
        rec["inputs"] = inputs(cid)
    return rec


_MEASURED = {
    "channel_axis": ("all axes but the channel; accepts axis {axis}", "train_f64_nchw_2x3x4x5: max |y - candidate| 3.3e-16"),
    "momentum_form": ("new-batch weight f, as passed", "weights of the batch mean at steps 2-4: 0.1, 0.1, 0.1"),
    "init_mean": ("mean 0, var 1", "solved back from step 1"),
    "estimator": ("{estimator}", "running_var / biased batch variance = {ratio}"),
    "eps_default": ("as given", "eps 1e-08 -> effective 1e-08; eps 0.001 -> effective 0.001"),
    "inference": ("uses the supplied statistics", "max |y - supplied-stat output| = 2.2e-16"),
    "frozen": ("{frozen}", "freeze, then a training-mode call"),
    "variance": ("stable (two-pass or Welford)", "train_f32_nc_16x5_offset1e4: y error/tolerance = 0.0412"),
    "one_value": ("{one_value}", "train_f32_nc_1x3_normal_m0.1_e1e-05_k1_aff_notrs_s0"),
}


def fingerprint(run_id: str, adapter: str, device: str, findings: dict) -> dict:
    fw, v, conv, _ = ADAPTERS.get(adapter, (HOSTILE_FRAMEWORK, HOSTILE_VERSION, "pytorch", ""))
    preset = CONVENTIONS[conv]
    fields, bad, known = {}, [], {}
    for name, (value, evidence) in _MEASURED.items():
        est = preset["estimator"]
        subst = {"axis": 1 if preset["channel_axis"] == 1 else -1, "estimator": est,
                 "ratio": "1.0666667" if est == "unbiased" else "1", "frozen": preset["frozen"],
                 "one_value": "raises" if preset["one_value"] == "raises" else "defined (y = beta)"}
        fields[name] = {"value": value.format(**subst), "evidence": evidence.format(**subst), "mismatch": False,
                        "probe": name, "finding": None}
    if fw in ("flax", "dm-haiku"):
        fields["variance"].update(value="unstable (one-pass-like)", mismatch=True,
                                  evidence="train_f32_nc_16x5_offset1e4: y error/tolerance = 412")
        bad.append("variance")
        known["variance"] = "flax-fast-variance" if fw == "flax" else "haiku-one-pass-variance"
    if fw == "mybackend":
        fields["estimator"].update(value="biased", mismatch=True, evidence="running_var / biased batch variance = 1")
        bad.append("estimator")
    if fw == "dm-haiku":
        fields["momentum_form"]["value"] = "zero-initialised debiased average (w_t = f / (1 - (1-f)^t))"
    for probe, fid in known.items():
        fields[probe]["finding"] = fid
    listed = [{"id": fid, "triggered": fid in known.values()} for fid, f in findings.items()
              if _applies(f, adapter) and any(c.startswith("fingerprint.") for c in f["checks"])]
    return {"type": "fingerprint", "run_id": run_id, "adapter": adapter, "device": device, "framework": fw,
            "version": v, "convention": conv, "fields": fields, "mismatches": bad, "findings": listed}


def _end(run_id: str, status: str, recs: list[dict], findings: dict, wall_s: float) -> dict:
    judged = {}
    targets = sorted({(r["adapter"], r["device"]) for r in recs if r["type"] in ("case", "fingerprint")})
    for adapter, device in targets:
        for fid, f in findings.items():
            if not _applies(f, adapter):
                continue
            mine = [r for r in recs if r["type"] in ("case", "fingerprint") and (r["adapter"], r["device"]) == (adapter, device)]
            refs = [x for r in mine for x in r.get("findings", []) if x["id"] == fid]
            matched, trig = len(refs), sum(x["triggered"] for x in refs)
            judged[(fid, adapter, device)] = {"id": fid, "adapter": adapter, "device": device, "matched": matched,
                                              "triggered": trig, "grid_cases": matched, "exercised": True,
                                              "stale": matched > 0 and trig == 0}
    return {"type": "end", "run_id": run_id, "status": status, "finished": "2025-01-01T00:07:00Z",
            "exitstatus": 1, "wall_s": wall_s, "findings": list(judged.values())}


def records_v2(hostile: bool = False) -> tuple[list[dict], list[dict], list[dict]]:
    """(cpu run, cuda run, interrupted onnxruntime run) records of schema version 2."""
    findings = dict(FINDINGS)
    cpu_adapters = [a for a in ADAPTERS if not a.startswith("onnxruntime")]
    if hostile:
        findings[HOSTILE_FINDING] = _hostile_finding()
        cpu_adapters.append(HOSTILE)
    cpu = [header("run-cpu", "cpu", cpu_adapters, findings=findings, hostile=hostile)]
    for a in cpu_adapters:
        cpu.append(fingerprint("run-cpu", a, "cpu", findings))
        for cid in ALL_CASES:
            cpu.append(_case_v2("run-cpu", a, "cpu", cid, findings, hostile))
    if hostile:
        cpu[-1]["output"] = HOSTILE_OUTPUT
    cpu.append(_end("run-cpu", "complete", cpu, findings, 412.6))
    torch_findings = {k: v for k, v in FINDINGS.items() if k.startswith("torch")}
    gpu_sel = {"adapters": ["torch.*"], "devices": ["cuda"], "cases": [], "keyword": "", "markers": "",
               "all_adapters": False, "partial": True}
    gpu = [header("run-gpu", "cuda", ["torch.nn", "torch.functional"], findings=torch_findings, selection=gpu_sel)]
    for a in ("torch.nn", "torch.functional"):
        gpu.append(fingerprint("run-gpu", a, "cuda", torch_findings))
        for cid in CASES + [EPS0, BF16_BARE]:
            gpu.append(_case_v2("run-gpu", a, "cuda", cid, torch_findings, hostile))
    gpu.append(_end("run-gpu", "partial", gpu, torch_findings, 95.0))
    ort = [header("run-ort", "cpu", ["onnxruntime.opset15"], cpu="Other CPU")]
    ort.append(fingerprint("run-ort", "onnxruntime.opset15", "cpu", {}))
    for cid in [F64] + CASES:
        ort.append(_case_v2("run-ort", "onnxruntime.opset15", "cpu", cid, {}, hostile))
    return cpu, gpu, ort


def records_v1(hostile: bool = False) -> tuple[list[dict], list[dict]]:
    """(cpu run records, cuda run records) of schema version 1: checks name ``deviation`` ids,
    the headers carry no finding texts, cases no repro or inputs."""
    adapters = ["torch.nn", "torch.functional"] + ([HOSTILE] if hostile else [])

    def c1(run_id, a, device, cid, verdict="pass", checks=None, **kw):
        r = case(run_id, a, device, cid, verdict, checks, **kw)
        for ch in r["checks"]:
            ch.setdefault("deviation", None)
        return r

    cpu = [header("run-cpu", "cpu", adapters, schema_version=1, hostile=hostile)]
    gpu = [header("run-gpu", "cuda", adapters, schema_version=1, hostile=hostile)]
    for a in adapters:
        for cid in CASES:
            cpu.append(c1("run-cpu", a, "cpu", cid))
            gpu.append(c1("run-gpu", a, "cuda", cid))
    bad = CASES[5]
    fail_checks = [check("outcome", "parity", ratio=None),
                   check("running_var", "running", "fail", 37.5, max_abs=0.12, max_rel=3e-3, max_ulp=410.0,
                         worst_index=[2, 1], expected=40.1, actual=40.22, tolerance=3.2e-3,
                         detail="|error| 0.12 exceeds tolerance at [2, 1] by 37.5x")]
    gpu = [r for r in gpu if r.get("case_id") != bad or r.get("adapter") != "torch.nn"]
    gpu.append(c1("run-gpu", "torch.nn", "cuda", bad, "fail", fail_checks))
    cpu.append(c1("run-cpu", adapters[-1], "cpu", HEAVY, "raised",
                  [check("outcome", "parity", "raised", None,
                         detail="reference defines a result; implementation raised " + (HOSTILE_ERROR if hostile else "RuntimeError"))],
                  error=HOSTILE_ERROR if hostile else "RuntimeError: boom"))
    cpu.append(c1("run-cpu", "torch.nn", "cpu", ONE, "xfail",
                  [check("outcome", "parity", "xfail", None, deviation="torch-one-value-notrs",
                         detail="known deviation torch-one-value-notrs: see https://github.com/pytorch/pytorch/issues/4534")]))
    cpu.append(c1("run-cpu", "torch.nn", "cpu", BF16_BARE, "xfail",
                  [check("outcome", "parity", ratio=None),
                   check("dx", "grad", "xfail", 256.0, deviation="torch-16bit-no-params--torch.nn--dx")]))
    cpu.append(c1("run-cpu", "torch.functional", "cpu", "frozen_f32_nchw_2x3x2x2_normal_m0.1_e1e-05_k1_aff_trs_s0",
                  "skip", [], skip_reason="F.batch_norm is stateless <em>"))
    cpu.append(c1("run-cpu", "torch.nn", "cpu", NAN, "fail",
                  [check("outcome", "parity", ratio=None),
                   check("y", "forward", "fail", "inf", detail="1 element(s) differ in finiteness")]))
    return cpu, gpu


def records(hostile: bool = False) -> tuple[list[dict], list[dict]]:
    """(cpu run records, cuda run records) of schema version 2 (the complete and the partial run)."""
    cpu, gpu, _ = records_v2(hostile)
    return cpu, gpu


def write(path: Path, recs: list[dict], cut_last: bool = False) -> Path:
    """Write records as JSON Lines; ``cut_last``: the last line cut mid-write (an interrupted run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in recs)
    if cut_last:
        last = json.dumps(recs[-1]) + "\n"
        text = text[:-len(last)] + last[:len(last) // 2]
    path.write_text(text, encoding="utf-8")
    return path


def write_sample(directory: Path, hostile: bool = False, version: int = 2) -> Path:
    """Part files of the sample in ``directory`` (a folder ``load`` reads): version 2, three runs
    (results.cpu, results.gpu, results.ort: interrupted, last line cut); version 1, two runs."""
    d = Path(directory)
    if version == 1:
        cpu, gpu = records_v1(hostile)
        write(d / "results.cpu.jsonl", cpu)
        write(d / "results.gpu.jsonl", gpu)
        return d
    cpu, gpu, ort = records_v2(hostile)
    write(d / "results.cpu.jsonl", cpu)
    write(d / "results.gpu.jsonl", gpu)
    write(d / "results.ort.jsonl", ort, cut_last=True)
    return d
