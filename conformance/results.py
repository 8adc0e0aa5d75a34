"""The results file: JSON Lines, one record per line, written as each case completes.

Schema "bn-conformance-results", version ``SCHEMA_VERSION`` (documented in
reports/SCHEMA.md). Record types:

  {"type": "run", "schema": ..., "schema_version": 1, "run_id", "suite_version",
   "started", "platform": {...}, "adapters": {name: {framework, version, convention,
   devices}}, "unavailable": {group: reason}, "conventions": {preset: {...}}}
  {"type": "case", "run_id", "case_id", "adapter", "device", "framework", "version",
   "convention", "verdict", "checks": [...], "error", "skip_reason", "timings": {...}}
  {"type": "fingerprint", "run_id", "adapter", "device", "framework", "version",
   "convention", "fields": {preset field: {value, evidence, mismatch, probe, deviation}},
   "mismatches": [probe, ...]}

During a run each process appends to its own part file ``results.<worker>.jsonl`` and
flushes after every record, so an interrupted run keeps every finished case. At the end
the parts are merged into ``results.jsonl``; ``load`` reads a merged file, a folder, or
leftover parts alike.
"""
from __future__ import annotations

import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

SCHEMA = "bn-conformance-results"
SCHEMA_VERSION = 1
SUITE_VERSION = "0.1.0"


RECORD_TYPES = ("run", "case", "fingerprint", "end")

_REPO = str(Path(__file__).resolve().parents[1])


def _path_prefixes() -> list[tuple[str, str]]:
    import sysconfig
    out = []
    for key, name in (("purelib", "<site-packages>"), ("platlib", "<site-packages>"), ("stdlib", "<stdlib>")):
        p = sysconfig.get_paths().get(key)
        if p:
            out.append((p, name))
    out += [(_REPO, "<repo>"), (sys.prefix, "<python>"), (os.path.expanduser("~"), "<home>")]
    return sorted({k: v for k, v in out if k and k != "/"}.items(), key=lambda kv: -len(kv[0]))


def scrub_paths(value):
    """Replace this machine's interpreter, site-packages, repository and home paths in
    recorded text (exception messages, tracebacks) by placeholders: results files and
    reports travel between machines and into the repository."""
    if isinstance(value, str):
        for prefix, name in _path_prefixes():
            value = value.replace(prefix, name)
        return value
    if isinstance(value, dict):
        return {k: scrub_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_paths(v) for v in value]
    return value


class ResultsError(ValueError):
    pass


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_header(run_id: str, adapters: dict, unavailable: dict, conventions: dict, devices: dict,
               selection: dict | None = None) -> dict:
    return {"type": "run", "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": run_id,
            "suite_version": SUITE_VERSION, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "platform": {"system": platform.platform(), "python": sys.version.split()[0], "cpu": cpu_model(),
                         "machine": platform.machine(), "devices": devices, "environment": _environment()},
            "adapters": adapters, "unavailable": unavailable, "conventions": conventions,
            "selection": selection or {}}


ENVIRONMENT = ("XLA_FLAGS", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "TF_ENABLE_ONEDNN_OPTS",
               "CUDA_VISIBLE_DEVICES", "JAX_PLATFORMS", "BN_HYPOTHESIS_PROFILE")


def _environment() -> dict:
    """The environment variables that change kernels and instruction sets, as set for this run."""
    return {k: os.environ[k] for k in ENVIRONMENT if k in os.environ}


class Writer:
    """Appends records to one part file, flushing each line."""

    def __init__(self, directory: Path, worker: str, header: dict):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"results.{worker}.jsonl"
        self._fh = open(self.path, "a", encoding="utf-8")
        self.write(header)

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(scrub_paths(record), allow_nan=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _read_lines(path: Path) -> list[dict]:
    out = []
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8") if path.suffix == ".gz" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise ResultsError(f"{path}: cannot read: {exc}") from None
    lines = text.splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines) and not text.endswith("\n"):
                raise ResultsError(f"{path}:{i}: truncated last line (an interrupted write?): {exc}") from None
            raise ResultsError(f"{path}:{i}: not JSON: {exc}") from None
        if not isinstance(rec, dict) or rec.get("type") not in RECORD_TYPES:
            raise ResultsError(f"{path}:{i}: a record must be an object with type one of {RECORD_TYPES}")
        out.append(rec)
    return out


def validate(records: list[dict], origin: str) -> None:
    runs = {}
    for i, r in enumerate(records, 1):
        if r["type"] == "run":
            if r.get("schema") != SCHEMA:
                raise ResultsError(f"{origin}: record {i}: schema {r.get('schema')!r} is not {SCHEMA!r}")
            if r.get("schema_version") != SCHEMA_VERSION:
                raise ResultsError(f"{origin}: record {i}: schema_version {r.get('schema_version')!r} is not "
                                   f"{SCHEMA_VERSION}; this suite reads version {SCHEMA_VERSION} only")
            runs[r["run_id"]] = r
        elif r["type"] == "end":
            continue
        elif r["type"] == "fingerprint":
            for k in ("run_id", "adapter", "device", "fields"):
                if k not in r:
                    raise ResultsError(f"{origin}: record {i}: fingerprint record lacks {k!r}")
        else:
            for k in ("run_id", "case_id", "adapter", "device", "verdict", "checks"):
                if k not in r:
                    raise ResultsError(f"{origin}: record {i}: case record lacks {k!r}")
            if r["run_id"] not in runs:
                raise ResultsError(f"{origin}: record {i}: case record of run {r['run_id']!r} precedes or lacks its run header")


def results_files(directory: Path) -> list[Path]:
    """The results files of a folder: the merged file (plain or gzipped), else the parts."""
    for merged in (directory / "results.jsonl", directory / "results.jsonl.gz"):
        if merged.exists():
            return [merged]
    return sorted(directory.glob("results.*.jsonl"))


def load(path: Path) -> list[dict]:
    """Records from a results file, or from every results*.jsonl in a folder."""
    path = Path(path)
    if path.is_dir():
        files = results_files(path)
        if not files:
            raise ResultsError(f"{path}: no results.jsonl or results.*.jsonl in this folder")
    elif path.exists():
        files = [path]
    else:
        raise ResultsError(f"{path}: no such file or folder")
    records = []
    for f in files:
        part = _read_lines(f)
        validate(part, str(f))
        records.extend(part)
    return records


def merge_parts(directory: Path, end: dict | None = None) -> Path | None:
    """Merge part files into results.jsonl (run headers first, deduplicated; the end record
    last), removing the parts."""
    parts = sorted(directory.glob("results.*.jsonl"))
    if not parts:
        return None
    headers, cases, seen = {}, [], set()
    for p in parts:
        for r in _read_lines(p):
            if r["type"] == "run":
                headers.setdefault(r["run_id"], r)
            elif r["type"] != "end":
                key = (r["type"], r["run_id"], r.get("adapter"), r.get("device"), r.get("case_id"))
                if key in seen:
                    continue
                seen.add(key)
                cases.append(r)
    cases.sort(key=lambda r: (r["type"] != "fingerprint", r["adapter"], r["device"], r.get("case_id", "")))
    out = directory / "results.jsonl"
    tmp = directory / "results.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        for h in headers.values():
            fh.write(json.dumps(h, allow_nan=False) + "\n")
        for c in cases:
            fh.write(json.dumps(c, allow_nan=False) + "\n")
        if end is not None:
            fh.write(json.dumps(end, allow_nan=False) + "\n")
    os.replace(tmp, out)
    for p in parts:
        p.unlink()
    return out
