"""A synthetic results folder (schema v1) for tests and demos: no framework needed.

Two runs (one on "cpu", one pretending "cuda"), two adapters, every verdict kind the
report treats specially, and optionally a hostile adapter name and error text.
"""
from __future__ import annotations

import json
from pathlib import Path

from bn_conformance.results import SCHEMA, SCHEMA_VERSION, SUITE_VERSION

HOSTILE = "torch.<script>alert(\"pwn\")</script>'\""
HOSTILE_ERROR = "RuntimeError: <script>alert('err')</script> \"quoted\" & <b>bold</b>"

CONVENTION = {"name": "pytorch", "title": "PyTorch torch.nn.BatchNorm", "channel_axis": 1, "momentum_form": "new",
              "momentum_default": 0.1, "schedule": "ema", "momentum_none": "cumulative", "estimator": "unbiased",
              "eps_default": 1e-5, "init_mean": 0.0, "init_var": 1.0, "frozen": "train", "one_value": "raises",
              "sources": {"estimator": "https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html (unbiased)"}}

CASES = [f"train_{dt}_nchw_2x3x2x2_{dist}_m0.1_e1e-05_k3_aff_trs_s0"
         for dt in ("f32", "f16") for dist in ("normal", "offset1e2", "offset1e4")]


def header(run_id: str, device: str, adapters: list[str], version: str = "2.4.0") -> dict:
    return {"type": "run", "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": run_id,
            "suite_version": SUITE_VERSION, "started": "2025-01-01T00:00:00Z",
            "platform": {"system": "Linux-test", "python": "3.11.7", "cpu": "Test CPU", "machine": "x86_64",
                         "devices": {device: "Test GPU" if device != "cpu" else "Test CPU"}},
            "adapters": {a: {"name": a, "framework": "torch", "version": version, "convention": "pytorch",
                             "devices": ["cpu", "cuda"]} for a in adapters},
            "unavailable": {"tf": "ImportError: No module named 'tensorflow'"}, "conventions": {"pytorch": CONVENTION}}


def check(name: str, family: str, verdict: str = "pass", ratio: float | str | None = 0.01, **kw) -> dict:
    c = {"name": name, "family": family, "verdict": verdict, "max_abs": None, "max_rel": None, "max_ulp": None,
         "ratio": ratio, "worst_index": None, "expected": None, "actual": None, "tolerance": None, "detail": "",
         "deviation": None}
    if ratio is not None and family != "parity":
        c.update(max_abs=1e-7, max_rel=1e-7, max_ulp=1.0, worst_index=[0, 1, 0, 0], expected=0.5, actual=0.5000001,
                 tolerance=1e-5)
    c.update(kw)
    return c


def case(run_id: str, adapter: str, device: str, case_id: str, verdict: str = "pass", checks=None, **kw) -> dict:
    checks = checks if checks is not None else [check("outcome", "parity", ratio=None), check("y", "forward"),
                                                check("dx", "grad", ratio=0.2), check("y_eval", "eval", ratio=0.05),
                                                check("running_mean", "running", ratio=0.03, worst_index=[2, 1]),
                                                check("running_var", "running", ratio=0.1, worst_index=[1, 0]),
                                                check("grad_sum_zero", "property", ratio=0.001)]
    r = {"type": "case", "run_id": run_id, "case_id": case_id, "adapter": adapter, "device": device,
         "framework": "torch", "version": "2.4.0", "convention": "pytorch", "verdict": verdict, "checks": checks,
         "error": None, "skip_reason": None, "timings": {"adapter_s": 0.001}}
    r.update(kw)
    return r


def records(hostile: bool = False) -> tuple[list[dict], list[dict]]:
    """(cpu run records, cuda run records)."""
    adapters = ["torch.nn", "torch.functional"] + ([HOSTILE] if hostile else [])
    cpu, gpu = [header("run-cpu", "cpu", adapters)], [header("run-gpu", "cuda", adapters)]
    for a in adapters:
        for cid in CASES:
            cpu.append(case("run-cpu", a, "cpu", cid))
            gpu.append(case("run-gpu", a, "cuda", cid))
    bad = "train_f16_nchw_2x3x2x2_offset1e4_m0.1_e1e-05_k3_aff_trs_s0"
    fail_checks = [check("outcome", "parity", ratio=None),
                   check("running_var", "running", "fail", 37.5, max_abs=0.12, max_rel=3e-3, max_ulp=410.0,
                         worst_index=[2, 1], expected=40.1, actual=40.22, tolerance=3.2e-3,
                         detail="|error| 0.12 exceeds tolerance at [2, 1] by 37.5x")]
    gpu = [r for r in gpu if r.get("case_id") != bad or r.get("adapter") != "torch.nn"]
    gpu.append(case("run-gpu", "torch.nn", "cuda", bad, "fail", fail_checks))
    cpu.append(case("run-cpu", adapters[-1], "cpu", "train_f32_nchw_2x3x2x2_heavy_m0.1_e1e-05_k3_aff_trs_s3", "raised",
                    [check("outcome", "parity", "raised", None,
                           detail="reference defines a result; implementation raised " + (HOSTILE_ERROR if hostile else "RuntimeError"))],
                    error=HOSTILE_ERROR if hostile else "RuntimeError: boom"))
    cpu.append(case("run-cpu", "torch.nn", "cpu", "train_f32_nc_1x3_normal_m0.1_e1e-05_k1_aff_notrs_s0", "xfail",
                    [check("outcome", "parity", "xfail", None, deviation="torch-one-value-notrs",
                           detail="known deviation torch-one-value-notrs: see https://github.com/pytorch/pytorch/issues/4534")]))
    cpu.append(case("run-cpu", "torch.functional", "cpu", "frozen_f32_nchw_2x3x2x2_normal_m0.1_e1e-05_k1_aff_trs_s0",
                    "skip", [], skip_reason="F.batch_norm is stateless <em>"))
    cpu.append(case("run-cpu", "torch.nn", "cpu", "train_f32_nchw_2x3x2x2_nan_m0.1_e1e-05_k3_aff_trs_s0", "fail",
                    [check("outcome", "parity", ratio=None),
                     check("y", "forward", "fail", "inf", detail="1 element(s) differ in finiteness")]))
    return cpu, gpu


def write(path: Path, recs: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def write_sample(directory: Path, hostile: bool = False) -> Path:
    """Part files results.cpu.jsonl and results.gpu.jsonl in ``directory`` (a folder ``load`` reads)."""
    cpu, gpu = records(hostile)
    write(Path(directory) / "results.cpu.jsonl", cpu)
    write(Path(directory) / "results.gpu.jsonl", gpu)
    return Path(directory)
