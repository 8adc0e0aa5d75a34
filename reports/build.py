"""build_report: results files -> one self-contained HTML file, written atomically."""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

import jinja2

from bn_conformance.compare import FAILING
from bn_conformance.results import SCHEMA, SCHEMA_VERSION

from . import figures, model, repro
from .model import FAMILIES, num

DETAIL_CAP = 60          # detailed case sections (most severe first); the table lists every case
TABLE_CAP = 2000         # rows of the attention table
CROSS_CAP = 500          # rows of the cross-device table
NEAR_CAP = 20            # passing cases closest to their tolerance

_TEMPLATES = Path(__file__).with_name("templates")
_URL = re.compile(r"https?://[^\s\])>\"']+")


def fmt(v, digits: int = 3) -> str:
    x = num(v)
    if x is None:
        return "—" if v is None else str(v)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.{digits}g}"
    return f"{x:.{digits - 1}e}"


def sortval(v) -> str:
    """A number for data-v sort attributes (inf sorts last, unknown first)."""
    x = num(v)
    if x is None or math.isnan(x):
        return "-1"
    return "1e308" if math.isinf(x) else repr(x)


_VERDICT_COLOR = {"pass": "#d5f5d5", "refused": "#d5f5d5", "skip": "#eeeeee", "xfail": "#fde7b0",
                  "xpass": "#e2c7f5"}


def cell_color(verdict: str | None, ratio) -> str:
    """Background of a matrix cell: failing = red (darker with the ratio), xfail = amber, pass = green
    shading to yellow as the worst ratio approaches the tolerance."""
    if verdict is None:
        return "#ffffff"
    r = num(ratio)
    if verdict in FAILING:
        if r is None or math.isnan(r) or math.isinf(r) or r > 1e3:
            return "#e06666"
        return "#f4a6a6" if r < 10 else "#ea8585"
    if verdict in ("pass", "refused") and r is not None and not math.isnan(r):
        # 1e-4 or below: green; 1: yellow (hue 120 -> 55 on a log scale)
        t = 0.0 if r <= 1e-4 else (1.0 if r >= 1 else (math.log10(r) + 4) / 4)
        return f"hsl({120 - 65 * t:.0f}, 60%, 82%)"
    return _VERDICT_COLOR.get(verdict, "#f4a6a6")


def links(text: str) -> list[tuple[str, str]]:
    """Split text into (kind, piece): kind "url" for http(s) URLs, "text" otherwise (rendered escaped)."""
    out, pos = [], 0
    for mt in _URL.finditer(text or ""):
        if mt.start() > pos:
            out.append(("text", text[pos:mt.start()]))
        out.append(("url", mt.group(0)))
        pos = mt.end()
    if pos < len(text or ""):
        out.append(("text", text[pos:]))
    return out


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=fmt, sortval=sortval, cellcolor=cell_color, links=links)
    return env


def _conventions(m: model.Model) -> list[dict]:
    """Per convention preset (as recorded in the run headers): declared fields with their sources,
    and one "measured" column per adapter using it (run header "fingerprints"; absent: not measured)."""
    groups: dict = {}
    for run in m.runs:
        fps = run.get("fingerprints") if isinstance(run.get("fingerprints"), dict) else {}
        for name, a in sorted((run.get("adapters") or {}).items()):
            if not isinstance(a, dict):
                continue
            cname = str(a.get("convention"))
            conv = (run.get("conventions") or {}).get(cname)
            conv = conv if isinstance(conv, dict) else {}
            g = groups.setdefault((cname, json.dumps(conv, sort_keys=True, default=str)),
                                  {"convention": cname, "conv": conv, "adapters": {}})
            key = (name, str(a.get("version")))
            ad = g["adapters"].setdefault(key, {"adapter": name, "framework": a.get("framework"),
                                                "version": a.get("version"), "devices": set(), "measured": {}})
            ad["devices"].update(a.get("devices") or [])
            fp = fps.get(name)
            if isinstance(fp, dict):
                ad["measured"].update(fp)
    out = []
    for g in groups.values():
        conv, sources = g["conv"], g["conv"].get("sources") or {}
        adapters = sorted(g["adapters"].values(), key=lambda a: (a["adapter"], str(a["version"])))
        fields = []
        for f, v in conv.items():
            if f in ("sources", "name", "title"):
                continue
            cells = []
            for a in adapters:
                if f not in a["measured"]:
                    cells.append(None)
                    continue
                mv = a["measured"][f]
                val, ev = (mv.get("value"), mv.get("evidence", "")) if isinstance(mv, dict) else (mv, "")
                mismatch = mv.get("mismatch", val != v) if isinstance(mv, dict) else val != v
                cells.append({"value": val, "evidence": str(ev or ""), "mismatch": bool(mismatch)})
            src = sources.get(f) or (sources.get("init") if f in ("init_mean", "init_var") else "") or ""
            fields.append({"field": f, "declared": v, "source": str(src), "measured": cells})
        extra = sorted({k for a in adapters for k in a["measured"]} - set(conv))
        for f in extra:  # measured only (no preset field), e.g. the variance algorithm
            cells = []
            for a in adapters:
                mv = a["measured"].get(f)
                cells.append(None if not isinstance(mv, dict) else {
                    "value": mv.get("value"), "evidence": str(mv.get("evidence", "")), "mismatch": bool(mv.get("mismatch"))})
            fields.append({"field": f, "declared": "(measured only)", "source": "", "measured": cells})
        out.append({"convention": g["convention"], "title": conv.get("title", ""), "fields": fields,
                    "missing": not conv,
                    "adapters": [a | {"devices": sorted(a["devices"])} for a in adapters]})
    return out


def _case_sections(rows: list[model.CaseRow]) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        rec = r.rec
        wc = r.worst_check
        checks = sorted(r.checks, key=lambda c: (-model.severity(str(c.get("verdict"))),
                                                 -(num(c.get("ratio")) or 0.0) if not math.isnan(num(c.get("ratio")) or 0.0) else 0.0))
        shown = [c for c in checks if c.get("verdict") != "pass"] or checks[:1]
        lang, code = repro.snippet(rec, wc)
        out.append({"anchor": f"case-{i}", "row": r, "rec": rec, "summary": repro.input_summary(str(rec["case_id"])),
                    "checks": shown, "npass": len(checks) - len(shown), "worst": wc, "lang": lang, "snippet": code,
                    "ratio": r.ratio})
    return out


def context(m: model.Model) -> dict:
    attention = [r for r in m.rows if r.attention]
    attention.sort(key=lambda r: (-model.severity(r.verdict), -(r.ratio if r.ratio is not None and not math.isnan(r.ratio) else -1.0), r.key))
    near = sorted((r for r in m.rows if r.verdict in ("pass", "refused") and r.ratio is not None
                   and not math.isnan(r.ratio)), key=lambda r: -r.ratio)[:NEAR_CAP]
    runs = []
    for run in m.runs:
        n = sum(1 for r in m.rows if r.rec["run_id"] == run["run_id"])
        runs.append({"run": run, "sources": m.run_sources.get(run["run_id"], []), "ncases": n,
                     "fingerprints": "fingerprints" in run})
    return {
        "title": "Batch-normalisation conformance report",
        "generated": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "inputs": m.inputs,
        "runs": runs, "totals": model.verdict_totals(m), "nrows": len(m.rows),
        "duplicates": m.duplicates, "superseded": m.superseded,
        "matrix": model.matrix(m), "families": FAMILIES,
        "conventions": _conventions(m),
        "attention": attention[:TABLE_CAP], "attention_total": len(attention),
        "sections": _case_sections(attention[:DETAIL_CAP]), "detail_cap": DETAIL_CAP,
        "near": near, "skips": model.skip_reasons(m), "cross": model.cross_device(m, CROSS_CAP),
        "deviations": model.deviation_table(m), "figures": figures.all_figures(m),
        "failing": FAILING,
    }


def render(m: model.Model) -> str:
    return _env().get_template("report.html.j2").render(**context(m))


def write_atomic(path: Path, text: str) -> Path:
    """Write to a temporary file beside ``path`` and rename it over ``path``: readers see the old
    report or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def build_report(inputs: list[Path], out: Path) -> Path:
    """Read results files/folders (schema v1) and write one self-contained HTML report to ``out``.

    Raises ReportError (message naming the file and the problem) when an input is missing,
    malformed, truncated or of another schema version; ``out`` is then left untouched."""
    m = model.read([Path(p) for p in inputs])
    html = render(m)
    return write_atomic(Path(out), html)
