"""The published results: the latest full run of the tested versions, kept in the
repository (``reports/published/``) small enough to read without installing anything.

``publish(inputs, out_dir)`` reads one or more results files/folders (a CPU run, a GPU run
from another machine) and writes ``out_dir/results.jsonl.gz``, where every record of a
case that did not pass is kept whole and a passing case keeps, per check, only its name,
family, verdict and error/tolerance ratio (3 significant digits) — what the report's
matrix and figures use — and then ``out_dir/report.html`` built from that file. Run headers
(with the findings' texts), fingerprints and end records are kept whole: the report is built
from this file alone. Run:

    python -m bn_conformance.reports publish reports/latest [GPU_RESULTS...] -o reports/published
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from bn_conformance.compare import FAILING
from bn_conformance.results import ResultsError, load, scrub_paths

from .build import build_report
from .model import ReportError

_KEEP = ("name", "family", "verdict", "ratio")


def _round(v):
    return float(f"{v:.3g}") if isinstance(v, float) else v


def compact(record: dict) -> dict:
    if record["type"] != "case" or record["verdict"] in FAILING or record["verdict"] == "xfail":
        return record
    out = {k: v for k, v in record.items() if k != "checks"}
    out["checks"] = []
    for c in record["checks"]:
        small = {k: _round(c.get(k)) for k in _KEEP}
        if c.get("steps"):
            small["steps"] = {"ratio": [_round(r) for r in c["steps"].get("ratio", [])]}
        out["checks"].append(small)
    out["timings"] = {k: _round(v) for k, v in (record.get("timings") or {}).items()}
    return out


def publish(inputs: list[Path], out_dir: Path) -> tuple[Path, Path]:
    records, warnings = [], []
    for p in inputs:
        try:
            records += load(Path(p), warnings=warnings)
        except ResultsError as exc:
            raise ReportError(str(exc)) from None
    runs = [r for r in records if r["type"] == "run"]
    ends = [r for r in records if r["type"] == "end"]
    rest = sorted((r for r in records if r["type"] in ("fingerprint", "case")),
                  key=lambda r: (r["type"] != "fingerprint", r["adapter"], r["device"], r.get("case_id", "")))
    rest += ends                  # how each run ended (absent: interrupted), after its cases
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "results.jsonl.gz"
    tmp = out_dir / "results.jsonl.gz.tmp"
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as fh:
        seen = set()
        for r in runs:
            if r["run_id"] not in seen:
                seen.add(r["run_id"])
                fh.write(json.dumps(scrub_paths(r), allow_nan=False) + "\n")
        for r in rest:
            fh.write(json.dumps(scrub_paths(compact(r)), allow_nan=False) + "\n")
    tmp.replace(target)
    return target, build_report([target], out_dir / "report.html")
