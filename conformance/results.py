"""The results file: JSON Lines, one record per line, written as each case completes.

Schema "bn-conformance-results", version ``SCHEMA_VERSION`` (reports/SCHEMA.md; the
machine-readable form is ``results.schema.json`` beside this module, checked with
jsonschema on every read). Record types:

  run          the header: run id, suite version, platform, adapters with versions and
               conventions, unavailable adapters, convention presets, the selection, and the
               text of every finding that applies (so a report needs nothing but the file)
  case         one case on one adapter and device: verdict, checks, findings matched
  fingerprint  an adapter's measured conventions
  end          how the run ended (complete, partial, interrupted) and each finding's judgement

During a run each process appends to its own part file ``results.<worker>.jsonl`` and
flushes after every record, so an interrupted run keeps every finished case. At the end
the parts are merged into ``results.jsonl``; ``load`` reads a merged file, a folder, or
leftover parts alike. Version-1 files (before findings) still load.
"""
from __future__ import annotations

import gzip
import json
import math
import os
import platform
import sys
import time
from functools import lru_cache
from pathlib import Path

SCHEMA = "bn-conformance-results"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
SUITE_VERSION = "0.2.0"


RECORD_TYPES = ("run", "case", "fingerprint", "end")

_REPO = str(Path(__file__).resolve().parents[1])


@lru_cache(maxsize=1)
def _path_prefixes() -> tuple[tuple[str, str], ...]:
    """This machine's paths to scrub, longest first (computed once: sysconfig is slow)."""
    import sysconfig
    out = []
    for key, name in (("purelib", "<site-packages>"), ("platlib", "<site-packages>"), ("stdlib", "<stdlib>")):
        p = sysconfig.get_paths().get(key)
        if p:
            out.append((p, name))
    out += [(_REPO, "<repo>"), (sys.prefix, "<python>"), (os.path.expanduser("~"), "<home>")]
    return tuple(sorted({k: v for k, v in out if k and k != "/"}.items(), key=lambda kv: -len(kv[0])))


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


class _NonFinite(ValueError):
    pass


def _no_constant(name: str):
    raise _NonFinite(f"{name} is not a JSON number (non-finite values are written as strings)")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise _NonFinite(f"{text} overflows a float (non-finite values are written as strings)")
    return v


SCHEMA_FILE = Path(__file__).with_name("results.schema.json")


@lru_cache(maxsize=1)
def _validator():
    """The record schema compiled once (fastjsonschema: 0.12 ms a record against jsonschema's
    2.7 ms, measured on a 6600-record run; tests/ cross-check it with jsonschema)."""
    import fastjsonschema
    return fastjsonschema.compile(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def _schema_error(rec) -> str | None:
    import fastjsonschema
    try:
        _validator()(rec)
    except fastjsonschema.JsonSchemaException as exc:
        return f"{exc.message[:300]}"
    return None


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise ResultsError(f"{path}: cannot read: {exc}") from None


_IDENTITY = ("run_id", "adapter", "device", "case_id", "framework", "version", "convention")


def _identity_error(rec: dict) -> str | None:
    """Names that the report puts into reproducer code and commands must be one printable line."""
    for key in _IDENTITY:
        v = rec.get(key)
        if isinstance(v, str) and not v.isprintable():
            return f"{key} {v[:80]!r} holds a line break or another non-printable character"
    return None


# The suite writes records at most 7 levels deep (case -> checks -> check -> worst index); odd
# values from a backend may nest further and are shown as text. Whether json.loads refuses
# deeper text depends on the process's recursion limit, which imported libraries raise
# (hypothesis, torch._inductor), so the bound is checked here, without recursion: deep enough
# for any honest record, far below the 1000 levels of Python's default recursion limit.
MAX_DEPTH = 256


def _depth(obj) -> int:
    deepest, stack = 0, [(obj, 1)]
    while stack:
        x, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            break
        if isinstance(x, dict):
            stack.extend((v, d + 1) for v in x.values())
        elif isinstance(x, list):
            stack.extend((v, d + 1) for v in x)
    return deepest


def _read_lines(path: Path, lenient: bool = False, warnings: list | None = None,
                numbers: list | None = None) -> list[dict]:
    """The records of one file, each parsed and checked against the schema. ``lenient``
    (part files of a run in progress or interrupted): a line that does not parse or validate
    costs only itself and is reported in ``warnings``; otherwise it is an error naming the
    file and line. ``numbers`` receives each record's line number."""
    out = []
    text = _read_text(path)
    lines = text.splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        problem = None
        try:
            rec = json.loads(line, parse_constant=_no_constant, parse_float=_finite_float)
        except RecursionError:
            problem = "nested too deeply to be a record"
        except (json.JSONDecodeError, _NonFinite, ValueError) as exc:
            cut = i == len(lines) and not text.endswith("\n")
            problem = ("truncated last line (an interrupted write?): " if cut else "not JSON: ") + str(exc)[:200]
        else:
            if line.count("[") + line.count("{") > MAX_DEPTH and _depth(rec) > MAX_DEPTH:   # count: a cheap bound
                problem = "nested too deeply to be a record"
            elif not isinstance(rec, dict) or rec.get("type") not in RECORD_TYPES:
                problem = f"a record must be an object with type one of {RECORD_TYPES}"
            else:
                problem = _schema_error(rec) or _identity_error(rec)
        if problem is not None:
            msg = f"{path}:{i}: {problem}"
            if not lenient:
                raise ResultsError(msg)
            if warnings is not None:
                warnings.append(msg)
            continue
        out.append(rec)
        if numbers is not None:
            numbers.append(i)
    return out


def validate(records: list[dict], origin: str, numbers: list | None = None) -> None:
    """Cross-record rules: a readable schema version, and every record after its run header.
    Errors name ``origin:LINE`` (``numbers``: each record's line; else its position)."""
    runs = set()
    for i, r in enumerate(records, 1):
        where = f"{origin}:{numbers[i - 1]}" if numbers and len(numbers) >= i else f"{origin}: record {i}"
        if r["type"] == "run":
            if r.get("schema") != SCHEMA:
                raise ResultsError(f"{where}: schema {r.get('schema')!r} is not {SCHEMA!r}")
            if r.get("schema_version") not in READABLE_VERSIONS:
                raise ResultsError(f"{where}: schema_version {r.get('schema_version')!r}; this suite "
                                   f"reads versions {READABLE_VERSIONS}")
            runs.add(r["run_id"])
        elif r["run_id"] not in runs:
            raise ResultsError(f"{where}: {r['type']} record of run {r['run_id']!r} precedes or "
                               "lacks its run header")


def results_files(directory: Path) -> list[Path]:
    """The results files of a folder: the merged file (plain or gzipped), else the parts."""
    for merged in (directory / "results.jsonl", directory / "results.jsonl.gz"):
        if merged.exists():
            return [merged]
    return sorted(directory.glob("results.*.jsonl"))


def load(path: Path, warnings: list | None = None) -> list[dict]:
    """Records from a results file, or from every results file in a folder. Part files are
    read leniently (a cut or broken line costs that line, listed in ``warnings``); a merged
    file must be whole. Raises ResultsError naming the file and line otherwise."""
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
        part = f.name.count(".") >= 2 and not f.name.startswith("results.jsonl")
        numbers: list = []
        recs = _read_lines(f, lenient=part, warnings=warnings, numbers=numbers)
        validate(recs, str(f), numbers)
        records.extend(recs)
    if not records:
        raise ResultsError(f"{path}: holds no records")
    return records


def merge_parts(directory: Path, end: dict | None = None) -> Path | None:
    """Merge part files into results.jsonl (run headers first, deduplicated; the end record
    last), removing the parts."""
    parts = sorted(directory.glob("results.*.jsonl"))
    if not parts:
        return None
    headers, cases, seen = {}, [], set()
    for p in parts:
        for r in _read_lines(p, lenient=True):
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
