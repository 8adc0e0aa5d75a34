"""Results records -> the data the report shows (no HTML here).

Reads schema v1 results via ``conformance.results.load`` and groups them: runs, case
results keyed by (adapter, device, case_id), the overview matrix, failing/deviating
cases, cross-device comparisons, skip reasons and deviations.
"""
from __future__ import annotations

import gzip
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bn_conformance.compare import FAILING, ORDER
from bn_conformance.results import SCHEMA, SCHEMA_VERSION, ResultsError, load, results_files

FAMILIES = ("forward", "eval", "running", "grad", "batch_stats", "property", "parity")
DEVIATING = ("xfail", "xpass")
_URL = re.compile(r"https?://[^\s\])>\"']+")
DTYPE_TOKENS = {"f16": "float16", "bf16": "bfloat16", "f32": "float32", "f64": "float64"}


class ReportError(Exception):
    """Inputs the report cannot be built from; the message names the file and the problem."""


def num(v) -> float | None:
    """A ratio/error field as a float: JSON numbers, or "nan"/"inf" strings (compare._jsonable)."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def severity(verdict: str) -> int:
    return ORDER.index(verdict) if verdict in ORDER else len(ORDER)


def worst_verdict(verdicts) -> str:
    vs = [v for v in verdicts if v] or ["pass"]
    return max(vs, key=severity)


def max_ratio(values) -> float | None:
    """Largest ratio (inf counts; nan is ignored), or None when no ratio is known."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return max(vals) if vals else None


def case_dtype(case_id: str) -> str:
    parts = case_id.split("_")
    return DTYPE_TOKENS.get(parts[1], "?") if len(parts) > 1 else "?"


def conditioning(case_id: str) -> float | None:
    """Mean offset of the case's distribution (offset1e4 -> 1e4; normal -> 1); None for others."""
    parts = case_id.split("_")
    if len(parts) < 5:
        return None
    dist = parts[4]
    if dist.startswith("offset"):
        try:
            return float(dist[len("offset"):])
        except ValueError:
            return None
    return 1.0 if dist in ("normal", "exact") else None


@dataclass
class CaseRow:
    rec: dict
    run: dict
    source: str

    @property
    def key(self):
        return (self.rec["adapter"], self.rec["device"], self.rec["case_id"])

    @property
    def verdict(self) -> str:
        return str(self.rec.get("verdict"))

    @property
    def checks(self) -> list[dict]:
        return [c for c in self.rec.get("checks") or [] if isinstance(c, dict)]

    @property
    def ratio(self) -> float | None:
        return max_ratio(num(c.get("ratio")) for c in self.checks)

    @property
    def worst_check(self) -> dict | None:
        cs = self.checks
        if not cs:
            return None
        def k(c):
            r = num(c.get("ratio"))
            return (severity(str(c.get("verdict"))), -1.0 if r is None or math.isnan(r) else r)
        return max(cs, key=k)

    @property
    def deviations(self) -> list[str]:
        return sorted({str(c["deviation"]) for c in self.checks if c.get("deviation")})

    @property
    def attention(self) -> bool:
        return self.verdict in FAILING or self.verdict in DEVIATING or bool(self.deviations)

    @property
    def version(self) -> str:
        return str(self.rec.get("version") or self.run.get("adapters", {}).get(self.rec["adapter"], {}).get("version", "?"))


@dataclass
class Model:
    inputs: list[str]
    runs: list[dict] = field(default_factory=list)
    run_sources: dict = field(default_factory=dict)     # run_id -> [files]
    rows: list[CaseRow] = field(default_factory=list)
    duplicates: int = 0
    superseded: int = 0


def _files_of(path: Path) -> list[Path]:
    return results_files(path) if path.is_dir() else [path]


def _schema_versions(path: Path) -> dict[str, set]:
    """schema/version of each run header in the files ``load`` would read (lenient: errors are load's job)."""
    out: dict[str, set] = {}
    for f in _files_of(path):
        try:
            opener = gzip.open if f.suffix == ".gz" else open
            with opener(f, "rt", encoding="utf-8") as fh:
                for line in fh:
                    if '"run"' not in line:
                        continue
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(r, dict) and r.get("type") == "run":
                        out.setdefault(str(f), set()).add((r.get("schema"), r.get("schema_version")))
        except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
            pass
    return out


def read(inputs: list[Path]) -> Model:
    if not inputs:
        raise ReportError("no results given")
    versions: dict[str, set] = {}
    for p in inputs:
        versions.update(_schema_versions(Path(p)))
    other = {f: v for f, v in versions.items() if any(sv != (SCHEMA, SCHEMA_VERSION) for sv in v)}
    if other:
        lines = [f"  {f}: " + ", ".join(f"schema {s!r} version {n!r}" for s, n in sorted(v, key=repr))
                 for f, v in sorted(versions.items())]
        raise ReportError("cannot build one report from these results: this report reads schema "
                          f"{SCHEMA!r} version {SCHEMA_VERSION} only (reports/SCHEMA.md), and "
                          f"{len(other)} file(s) hold other versions:\n" + "\n".join(lines) +
                          "\nRe-run those cases with this suite version, or build a separate report with "
                          "the suite version that wrote them.")
    m = Model(inputs=[str(p) for p in inputs])
    runs: dict[str, dict] = {}
    by_key: dict[tuple, CaseRow] = {}
    seen: set = set()
    files = []
    for p in inputs:
        p = Path(p)
        if not p.exists():
            raise ReportError(f"{p}: no such file or folder")
        fs = _files_of(p)
        if not fs:
            raise ReportError(f"{p}: no results.jsonl or results.*.jsonl in this folder")
        files += fs
    for f in files:
        try:
            records = load(f)      # one file at a time: every record keeps its origin
        except ResultsError as exc:
            raise ReportError(str(exc)) from None
        for r in records:
            if r["type"] == "run":
                runs.setdefault(r["run_id"], r)
                srcs = m.run_sources.setdefault(r["run_id"], [])
                if str(f) not in srcs:
                    srcs.append(str(f))
                continue
            if r["type"] == "end":           # how the run ended: joined to its run header
                runs[r["run_id"]]["end"] = r
                continue
            if r["type"] == "fingerprint":   # measured conventions: joined to their run header
                runs[r["run_id"]].setdefault("fingerprints", {})[r["adapter"]] = r["fields"]
                continue
            ident = (r["run_id"],) + (r["adapter"], r["device"], r["case_id"])
            if ident in seen:
                m.duplicates += 1
                continue
            seen.add(ident)
            row = CaseRow(r, runs[r["run_id"]], str(f))
            old = by_key.get(row.key)
            if old is not None:
                m.superseded += 1
                if str(old.run.get("started", "")) > str(row.run.get("started", "")):
                    continue
            by_key[row.key] = row
    m.runs = sorted(runs.values(), key=lambda r: (str(r.get("started", "")), r["run_id"]))
    m.rows = sorted(by_key.values(), key=lambda c: c.key)
    return m


# -- aggregates ---------------------------------------------------------------------------------

def matrix(m: Model) -> dict:
    """Rows (adapter, version, device, dtype) x FAMILIES: worst verdict, worst ratio, counts."""
    cells: dict = defaultdict(lambda: {"verdicts": Counter(), "ratio": None})
    cases: dict = defaultdict(Counter)
    for row in m.rows:
        rk = (row.rec["adapter"], row.version, row.rec["device"], case_dtype(row.rec["case_id"]))
        cases[rk][row.verdict] += 1
        for c in row.checks:
            fam = c.get("family") if c.get("family") in FAMILIES else "property"
            cell = cells[(rk, fam)]
            cell["verdicts"][str(c.get("verdict"))] += 1
            cell["ratio"] = max_ratio([cell["ratio"], num(c.get("ratio"))])
    out_rows = []
    for rk in sorted(cases, key=lambda k: (k[0], k[2], k[1], ["float16", "bfloat16", "float32", "float64", "?"].index(k[3]) if k[3] in ("float16", "bfloat16", "float32", "float64", "?") else 9)):
        fams = []
        for fam in FAMILIES:
            cell = cells.get((rk, fam))
            if cell is None:
                fams.append(None)
                continue
            v = worst_verdict(cell["verdicts"])
            fams.append({"verdict": v, "ratio": cell["ratio"], "counts": dict(cell["verdicts"]),
                         "total": sum(cell["verdicts"].values()),
                         "bad": sum(n for vv, n in cell["verdicts"].items() if vv in FAILING)})
        out_rows.append({"adapter": rk[0], "version": rk[1], "device": rk[2], "dtype": rk[3],
                         "cases": dict(cases[rk]), "ncases": sum(cases[rk].values()),
                         "case_verdict": worst_verdict(cases[rk]), "families": fams})
    return {"families": FAMILIES, "rows": out_rows}


def verdict_totals(m: Model) -> dict:
    c = Counter(r.verdict for r in m.rows)
    return {v: c[v] for v in list(ORDER) + sorted(set(c) - set(ORDER)) if c[v]}


def skip_reasons(m: Model) -> list[dict]:
    c = Counter((r.rec["adapter"], str(r.rec.get("skip_reason") or "")) for r in m.rows if r.verdict == "skip")
    return [{"adapter": a, "reason": reason, "count": n} for (a, reason), n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]


def cross_device(m: Model, cap: int) -> dict:
    """Same adapter and case on several devices: verdict and worst ratio side by side."""
    by: dict = defaultdict(dict)
    for r in m.rows:
        by[(r.rec["adapter"], r.rec["case_id"])][r.rec["device"]] = r
    devices = sorted({r.rec["device"] for r in m.rows}, key=lambda d: (d != "cpu", d))
    multi = [(k, v) for k, v in by.items() if len(v) > 1]
    rows = []
    agree = 0
    for (adapter, case_id), per in sorted(multi):
        verdicts = {d: r.verdict for d, r in per.items()}
        same = len(set(verdicts.values())) == 1
        agree += same
        ratios = [r.ratio for r in per.values()]
        fin = [x for x in ratios if x is not None and math.isfinite(x) and x > 0]
        spread = (max(fin) / min(fin)) if len(fin) > 1 else 1.0
        rows.append({"adapter": adapter, "case_id": case_id, "same": same, "spread": spread,
                     "cells": [({"verdict": per[d].verdict, "ratio": per[d].ratio} if d in per else None) for d in devices]})
    rows.sort(key=lambda r: (r["same"], -r["spread"]))
    return {"devices": devices, "rows": rows[:cap], "total": len(rows), "agree": agree, "capped": max(0, len(rows) - cap)}


def deviation_table(m: Model) -> list[dict]:
    seen: dict[str, Counter] = defaultdict(Counter)
    details: dict[str, str] = {}
    for r in m.rows:
        for c in r.checks:
            d = c.get("deviation")
            if d:
                seen[str(d)][str(c.get("verdict"))] += 1
                details.setdefault(str(d), str(c.get("detail") or ""))
    known = {}
    try:
        from bn_conformance.deviations import all_deviations
        for d in all_deviations():
            known[d.id] = d
    except Exception as exc:  # noqa: BLE001 -- a broken deviation file must not stop the report
        known["(deviation files unreadable)"] = None
        details["(deviation files unreadable)"] = f"{type(exc).__name__}: {exc}"
    out = []
    for did in sorted(set(known) | set(seen)):
        d = known.get(did)
        out.append({"id": did, "known": d is not None, "reason": d.reason if d else details.get(did, ""),
                    "evidence": d.evidence if d else " ".join(_URL.findall(details.get(did, ""))), "source": d.source if d else "",
                    "adapters": ", ".join(d.adapters) if d else "", "versions": d.versions if d else "",
                    "cases": ", ".join(d.cases) if d else "", "checks": ", ".join(d.checks) if d else "",
                    "matched": dict(seen.get(did, {}))})
    return out
