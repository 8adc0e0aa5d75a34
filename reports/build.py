"""build_report: results files -> one self-contained HTML file, written atomically.

The report is built from the results files alone: finding texts come from the run headers,
reproduction commands, input summaries and adapter output from the case records. Nothing
from a record becomes code or markup: the template autoescapes every value, URLs become
links only when they are plain http(s) URLs, and the page's Content-Security-Policy allows
no external resource.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

import jinja2

from bn_conformance.results import READABLE_VERSIONS, SCHEMA, SCHEMA_VERSION
from bn_conformance.vocab import FAILING

from . import figures, model
from .model import FAMILIES, _dict, _str, num

DETAIL_CAP = 60          # detailed case sections (most severe first), plus the profiles' examples
EXAMPLE_CAP = 120        # case sections added for the examples the profile cards link to
TABLE_CAP = 2000         # rows of the attention table
CROSS_CAP = 500          # rows of the cross-device table
NEAR_CAP = 20            # passing cases closest to their tolerance
FINDINGS_CAP = 500       # rows of the findings table
WARNINGS_CAP = 200       # unreadable records listed
PROFILE_CAP = 60         # framework cards (the rest are named in a note)
SHOWN_FINDINGS = 6       # finding lines a card shows open (the rest behind "N more")
BLOCK_CAP = 8000         # characters of one error, adapter output or command block

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


def thousands(n) -> str:
    return f"{int(n):,}" if isinstance(n, int) else str(n)


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
    text = text if isinstance(text, str) else _str(text)
    out, pos = [], 0
    for mt in _URL.finditer(text):
        if mt.start() > pos:
            out.append(("text", text[pos:mt.start()]))
        out.append(("url", mt.group(0)))
        pos = mt.end()
    if pos < len(text):
        out.append(("text", text[pos:]))
    return out


def short_url(url: str) -> str:
    """A link's label on a card: host and the end of the path ("github.com/…/issues/4534")."""
    rest = url.split("://", 1)[-1]
    host, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if len(parts) > 2:
        return f"{host}/…/{'/'.join(parts[-2:])}"[:70]
    return rest[:70]


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=fmt, sortval=sortval, cellcolor=cell_color, links=links, shorturl=short_url,
                       thousands=thousands)
    return env


def _cap(text, cap: int = BLOCK_CAP) -> str:
    return _str(text, cap)


def _conventions(m: model.Model) -> list[dict]:
    """Per convention preset (as recorded in the run headers): declared fields with their sources,
    and one "measured" column per adapter using it (fingerprint records, or a v1 header's
    optional "fingerprints"; absent: not measured)."""
    measured: dict[str, dict] = {}
    for (adapter, _device), fp in m.fingerprints.items():
        measured.setdefault(adapter, {}).update(_dict(fp.get("fields")))
    groups: dict = {}
    for run in m.runs:
        hfps = _dict(run.get("fingerprints"))
        for name, a in sorted(_dict(run.get("adapters")).items()):
            if not isinstance(a, dict):
                continue
            cname = _str(a.get("convention"), 200)
            conv = _dict(_dict(run.get("conventions")).get(cname))
            g = groups.setdefault((cname, json.dumps(conv, sort_keys=True, default=str)),
                                  {"convention": cname, "conv": conv, "adapters": {}})
            key = (name, _str(a.get("version"), 200))
            ad = g["adapters"].setdefault(key, {"adapter": name, "framework": _str(a.get("framework"), 200),
                                                "version": _str(a.get("version"), 200), "devices": set(),
                                                "measured": {}})
            ad["devices"].update(model._strs(a.get("devices")))
            ad["measured"].update(_dict(hfps.get(name)))
            ad["measured"].update(measured.get(name, {}))
    out = []
    for g in groups.values():
        conv, sources = g["conv"], _dict(g["conv"].get("sources"))
        adapters = sorted(g["adapters"].values(), key=lambda a: (a["adapter"], a["version"]))

        def cell(mv, declared, has_declared):
            if isinstance(mv, dict):
                val = mv.get("value")
                mismatch = mv.get("mismatch", val != declared if has_declared else False)
                return {"value": _str(val, 400), "evidence": _str(mv.get("evidence"), 600),
                        "mismatch": bool(mismatch), "finding": _str(mv.get("finding") or mv.get("deviation"), 400)}
            return {"value": _str(mv, 400), "evidence": "", "mismatch": has_declared and mv != declared, "finding": ""}

        fields = []
        for f, v in conv.items():
            if f in ("sources", "name", "title"):
                continue
            cells = [cell(a["measured"][f], v, True) if f in a["measured"] else None for a in adapters]
            src = sources.get(f) or (sources.get("init") if f in ("init_mean", "init_var") else "") or ""
            fields.append({"field": f, "declared": _str(v, 400), "source": _str(src), "measured": cells})
        extra = sorted({k for a in adapters for k in a["measured"]} - set(conv) - {"layouts"})
        for f in extra:  # measured only (no preset field), e.g. the variance algorithm
            cells = [cell(a["measured"][f], None, False) if f in a["measured"] else None for a in adapters]
            fields.append({"field": f, "declared": "(measured only)", "source": "", "measured": cells})
        out.append({"convention": g["convention"], "title": _str(conv.get("title"), 400), "fields": fields,
                    "missing": not conv,
                    "adapters": [a | {"devices": sorted(a["devices"])} for a in adapters]})
    return out


def _pair(v) -> tuple | None:
    return (v[0], v[1]) if isinstance(v, (list, tuple)) and len(v) == 2 else None


def input_lines(inputs) -> list[tuple[str, str]]:
    """The stored input summary of a case record as (label, text) lines (v2 "inputs")."""
    i = _dict(inputs)
    if not i:
        return []
    g = lambda k: _str(i.get(k), 400)  # noqa: E731
    out = []
    what = f"{g('mode') or '?'}, {g('steps') or '?'} step(s) of shape {g('shape') or '?'}"
    extra = ", ".join(x for x in (g("layout"), f"{g('channels')} channels" if g("channels") else "",
                                  f"{g('n')} values per channel" if g("n") else "") if x)
    out.append(("inputs", f"{what} ({extra}), {g('dtype') or '?'}" if extra else f"{what}, {g('dtype') or '?'}"))
    dist = g("dist")
    if dist:
        out.append(("distribution", f"{dist}: {g('dist_text')}" if g("dist_text") else dist))
    aff = {True: "affine", False: "no affine"}.get(i.get("affine"), "")
    trk = {True: "tracking running statistics", False: "not tracking running statistics"}.get(i.get("track"), "")
    eps = num(i.get("eps"))
    out.append(("settings", ", ".join(x for x in (f"momentum {g('momentum')}" if "momentum" in i else "",
                                                  f"eps {eps:g}" if eps is not None else
                                                  (f"eps {g('eps')}" if "eps" in i else ""), aff, trk) if x)))
    mr, sr = _pair(i.get("mean_range")), _pair(i.get("std_range"))
    stats = []
    if mr:
        stats.append(f"mean in [{fmt(mr[0], 4)}, {fmt(mr[1], 4)}]")
    if sr:
        stats.append(f"std in [{fmt(sr[0], 4)}, {fmt(sr[1], 4)}]")
    if "min" in i or "max" in i:
        stats.append(f"min {fmt(i.get('min'), 4)}, max {fmt(i.get('max'), 4)}")
    if "nonfinite" in i:
        stats.append(f"{g('nonfinite')} non-finite of {g('size') or '?'}")
    if stats:
        out.append(("x per channel", "; ".join(stats)))
    return [(k, v) for k, v in out if v]


def _sort_checks(checks: list[dict]) -> list[dict]:
    def k(c):
        r = num(c.get("ratio"))
        return (-model.severity(str(c.get("verdict"))), -(r if r is not None and not math.isnan(r) else 0.0))
    return sorted(checks, key=k)


_CHECK_KEYS = ("name", "family", "verdict", "max_abs", "max_rel", "max_ulp", "worst_index", "expected", "actual",
               "tolerance", "ratio", "detail")


def _check_view(c: dict) -> dict:
    v = {k: c.get(k) for k in _CHECK_KEYS}
    for k in ("name", "family", "verdict"):
        v[k] = _str(v[k], 400)
    v["detail"] = _str(v["detail"])
    wi = c.get("worst_index")
    v["worst_index"] = _str(wi, 200) if wi is not None else ""
    v["finding"] = model.check_finding(c) or ""
    return v


def _case_section(r: model.CaseRow, anchor: str, cat: dict) -> dict:
    rec = r.rec
    checks = _sort_checks(r.checks)
    shown = [c for c in checks if c.get("verdict") != "pass"] or checks[:1]
    code = _dict(rec.get("repro")).get("code")
    listed = []
    for ref in rec.get("findings") or []:
        if isinstance(ref, dict) and ref.get("id"):
            fid = _str(ref["id"], 400)
            listed.append({"id": fid, "triggered": ref.get("triggered") is True})
    wc = r.worst_check
    return {"anchor": anchor, "row": r, "verdict": r.verdict, "case_id": rec["case_id"], "adapter": rec["adapter"],
            "device": rec["device"], "run_id": rec["run_id"], "framework": r.framework, "version": r.version,
            "convention": _str(rec.get("convention"), 200),
            "inputs": input_lines(rec.get("inputs")), "has_inputs": isinstance(rec.get("inputs"), dict),
            "checks": [_check_view(c) for c in shown], "npass": len(checks) - len(shown),
            "worst": _check_view(wc) if wc else None, "attributed": r.findings, "listed": listed,
            "repro": _cap(code) if isinstance(code, str) else "", "repro_lang": _str(_dict(rec.get("repro")).get("lang"), 40),
            "error": _cap(rec.get("error")), "output": _cap(rec.get("output")),
            "skip_reason": _cap(rec.get("skip_reason"), 2000), "ratio": r.ratio}


def _selection(sel) -> list[tuple[str, str]]:
    """A run's selection as (option, value) pairs, the empty ones left out."""
    out = []
    for k, v in _dict(sel).items():
        if k == "partial" or v in (None, "", [], {}, False):
            continue
        out.append((_str(k, 100), " ".join(model._strs(v)) if isinstance(v, list) else _str(v, 1000)))
    partial = _dict(sel).get("partial")
    if partial is not None:
        out.append(("partial", "yes" if partial is True else "no" if partial is False else _str(partial, 100)))
    return out


def _summary(m: model.Model, totals: dict, profiles: list[dict], table: list[dict]) -> dict:
    runs = [{"run_id": run["run_id"]} | model.run_status(m, run) for run in m.runs]
    statuses = {r["status"] for r in runs}
    overall = "interrupted" if "interrupted" in statuses else ("partial" if "partial" in statuses else
                                                                ("complete" if runs else "empty"))
    nfail = sum(n for v, n in totals.items() if v in FAILING)
    triggered = [f for f in table if f["triggered"] or sum(f["verdicts"].values())]
    return {"runs": runs, "status": overall, "machines": model.machines(m), "devices": model.devices(m),
            "ncases": len(m.rows), "totals": totals, "nfail": nfail, "nxfail": totals.get("xfail", 0),
            "npass": sum(totals.get(v, 0) for v in model.PASSING), "nskip": totals.get("skip", 0),
            "nfindings": len([f for f in table if f["known"]]), "ntriggered": len(triggered),
            "nstale": sum(1 for f in table if f["stale"]),
            "nadapters": len({a for p in profiles for a in p["adapters"]}), "nframeworks": len(profiles),
            "fp_unexplained": sum(p["fp_unexplained"] for p in profiles),
            "legacy": any(str(r.get("schema_version")) == "1" for r in m.runs)}


def context(m: model.Model) -> dict:
    cat = model.catalogue(m)
    table = model.finding_table(m, cat, FINDINGS_CAP)
    anchors = {f["id"]: f"finding-{i}" for i, f in enumerate(table)}
    titles = {fid: (f["title"] if f["known"] else "no text recorded for this id (results of schema version 1)")
              for fid, f in cat.items()}
    profiles = model.profiles(m, cat)
    totals = model.verdict_totals(m)

    attention = [r for r in m.rows if r.attention]
    attention.sort(key=lambda r: (-model.severity(r.verdict), -(r.ratio if r.ratio is not None and not math.isnan(r.ratio) else -1.0), r.key))
    # detailed sections: the most severe, then every example a profile card names
    detailed = list(attention[:DETAIL_CAP])
    chosen = {id(r) for r in detailed}
    extra = []
    for p in profiles:
        for r in [x["example"] for x in p["findings"] if x["example"] is not None] + p["unexplained"]:
            if id(r) not in chosen and len(extra) < EXAMPLE_CAP:
                chosen.add(id(r))
                extra.append(r)
    order = {id(r): i for i, r in enumerate(attention)}
    detailed += sorted(extra, key=lambda r: order.get(id(r), len(order)))
    case_anchor = {id(r): f"case-{i}" for i, r in enumerate(detailed)}
    sections = [_case_section(r, case_anchor[id(r)], cat) for r in detailed]
    for p in profiles:
        for x in p["findings"]:
            x["anchor"] = case_anchor.get(id(x["example"])) if x["example"] is not None else None
        p["unexplained"] = [{"row": r, "anchor": case_anchor.get(id(r)), "wc": r.worst_check,
                             "rerun": model.rerun_line(r.rec)} for r in p["unexplained"]]

    near = sorted((r for r in m.rows if r.verdict in ("pass", "refused") and r.ratio is not None
                   and not math.isnan(r.ratio)), key=lambda r: -r.ratio)[:NEAR_CAP]
    per_run = {}
    for r in m.rows:
        per_run[r.rec["run_id"]] = per_run.get(r.rec["run_id"], 0) + 1
    fp_runs = {fp["run_id"] for fp in m.fingerprints.values()}
    runs = []
    for run in m.runs:
        pf = _dict(run.get("platform"))
        st = model.run_status(m, run)
        end = st["end"] or {}
        runs.append({"run": run, "run_id": run["run_id"], "sources": m.run_sources.get(run["run_id"], []),
                     "ncases": per_run.get(run["run_id"], 0), "fingerprints": run["run_id"] in fp_runs
                     or bool(run.get("fingerprints")), "status": st,
                     "started": _str(run.get("started"), 100), "suite": _str(run.get("suite_version"), 100),
                     "schema_version": _str(run.get("schema_version"), 20),
                     "system": _str(pf.get("system"), 400), "machine": _str(pf.get("machine"), 100),
                     "python": _str(pf.get("python"), 100), "cpu": _str(pf.get("cpu"), 400),
                     "devices": [(_str(k, 200), _str(v, 400)) for k, v in _dict(pf.get("devices")).items()],
                     "environment": [(_str(k, 200), _str(v, 4000)) for k, v in _dict(pf.get("environment")).items()],
                     "adapters": [(_str(n, 400), _str(_dict(a).get("framework"), 200), _str(_dict(a).get("version"), 200),
                                   "/".join(model._strs(_dict(a).get("devices"))), _str(_dict(a).get("origin"), 400))
                                  for n, a in _dict(run.get("adapters")).items()],
                     "unavailable": [(_str(k, 400), _str(v)) for k, v in _dict(run.get("unavailable")).items()],
                     "selection": _selection(run.get("selection")),
                     "end": [(k, _str(end.get(k), 200)) for k in ("status", "finished", "exitstatus", "wall_s")
                             if k in end],
                     "nfindings": len(_dict(run.get("findings")))})
    summary = _summary(m, totals, profiles, table)
    return {
        "title": "Batch-normalisation conformance report",
        "generated": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "readable": READABLE_VERSIONS, "inputs": m.inputs,
        "summary": summary, "profiles": profiles[:PROFILE_CAP], "profiles_more": [p["framework"] for p in profiles[PROFILE_CAP:]],
        "fanchor": anchors, "ftitle": titles,
        "runs": runs, "totals": totals, "nrows": len(m.rows),
        "duplicates": m.duplicates, "superseded": m.superseded,
        "warnings": m.warnings[:WARNINGS_CAP], "nwarnings": len(m.warnings),
        "matrix": model.matrix(m), "families": FAMILIES, "shown_findings": SHOWN_FINDINGS,
        "conventions": _conventions(m),
        "attention": [{"row": r, "anchor": case_anchor.get(id(r)), "wc": r.worst_check,
                       "findings": r.findings} for r in attention[:TABLE_CAP]],
        "attention_total": len(attention),
        "sections": sections, "detail_cap": DETAIL_CAP,
        "near": near, "skips": model.skip_reasons(m), "cross": model.cross_device(m, CROSS_CAP),
        "findings": table, "findings_total": len(cat), "figures": figures.all_figures(m),
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
    """Read results files/folders (schema versions 1 and 2) and write one self-contained HTML
    report to ``out``, from the records alone.

    Raises ReportError (message naming the file and the problem) when an input is missing,
    malformed, or of another schema version; ``out`` is then left untouched. Part files of an
    interrupted run are read leniently: a cut or broken line is skipped and listed in the
    report's warnings."""
    m = model.read([Path(p) for p in inputs])
    html = render(m)
    return write_atomic(Path(out), html)
