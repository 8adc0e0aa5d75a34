"""Results records -> the data the report shows (no HTML here).

Everything comes from the results files alone (schema versions 1 and 2, read with
``bn_conformance.results.load``): nothing here reads the checkout's findings files,
regenerates inputs or imports the suite's input generators. Groups the records into runs
(with their end records), case results keyed by (adapter, device, case_id), fingerprints,
the findings catalogue (the texts the v2 run headers carry), the per-framework profiles
of the report's first screen, the overview matrix, cross-device comparisons and skip
reasons.

Every value read from a record is data: it is coerced to the type the report expects
(``_str``, ``_strs``, ``num``) and rendered by an autoescaping template.
"""
from __future__ import annotations

import fnmatch
import gzip
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from bn_conformance.results import READABLE_VERSIONS, SCHEMA, ResultsError, load, results_files
from bn_conformance.vocab import FAILING, ORDER

FAMILIES = ("forward", "eval", "running", "grad", "batch_stats", "property", "parity")
DEVIATING = ("xfail", "xpass")
PASSING = ("pass", "refused")
SEVERITIES = ("high", "medium", "low")
_URL = re.compile(r"https?://[^\s\])>\"']+")
DTYPE_TOKENS = {"f16": "float16", "bf16": "bfloat16", "f32": "float32", "f64": "float64"}
# fingerprint fields in the order a reader asks about them (others follow, sorted)
FP_ORDER = ("channel_axis", "momentum_form", "init_mean", "estimator", "eps_default", "inference", "frozen",
            "variance", "one_value")
TEXT_CAP = 2000          # one string from a record shown in a card or table cell
QUIET_CAP = 30           # findings a card names as "also apply, not triggered"
FP_ROWS_CAP = 60         # declared-vs-measured rows of a card


class ReportError(Exception):
    """Inputs the report cannot be built from; the message names the file and the problem."""


# -- coercion of record values --------------------------------------------------------------------

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


def _str(v, cap: int = TEXT_CAP) -> str:
    """Any record value as display text (None -> "")."""
    if v is None:
        return ""
    s = v if isinstance(v, str) else json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
    return s if len(s) <= cap else s[:cap] + f"… ({len(s) - cap} more characters)"


def _strs(v) -> list[str]:
    """A list-of-names field as a list of strings (a lone string is one name)."""
    if v is None or v == "":
        return []
    if isinstance(v, (list, tuple)):
        return [_str(x, 400) for x in v if x is not None]
    return [_str(v, 400)]


def _int(v) -> int:
    x = num(v)
    return int(x) if x is not None and math.isfinite(x) else 0


def _dict(v) -> dict:
    return v if isinstance(v, dict) else {}


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


def check_finding(c: dict) -> str | None:
    """The finding a check was attributed to: ``finding`` (v2) or ``deviation`` (v1)."""
    f = c.get("finding") or c.get("deviation")
    return _str(f, 400) if f else None


def urls(text: str) -> list[str]:
    return _URL.findall(text or "")


def rerun_line(rec: dict) -> str:
    """The first line of a case's stored reproduction commands (the pytest rerun), or ""."""
    code = _dict(rec.get("repro")).get("code")
    return code.strip().splitlines()[0][:TEXT_CAP] if isinstance(code, str) and code.strip() else ""


# -- rows -----------------------------------------------------------------------------------------

@dataclass(eq=False)
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

    @cached_property
    def checks(self) -> list[dict]:
        return [c for c in self.rec.get("checks") or [] if isinstance(c, dict)]

    @cached_property
    def ratio(self) -> float | None:
        return max_ratio(num(c.get("ratio")) for c in self.checks)

    @cached_property
    def worst_check(self) -> dict | None:
        cs = self.checks
        if not cs:
            return None

        def k(c):
            r = num(c.get("ratio"))
            return (severity(str(c.get("verdict"))), -1.0 if r is None or math.isnan(r) else r)
        return max(cs, key=k)

    @cached_property
    def findings(self) -> list[str]:
        """Findings (v2) or deviations (v1) that explained a check of this case."""
        return sorted({f for f in (check_finding(c) for c in self.checks) if f})

    @property
    def attention(self) -> bool:
        return self.verdict in FAILING or self.verdict in DEVIATING or bool(self.findings)

    @cached_property
    def version(self) -> str:
        v = self.rec.get("version")
        if v is None:
            v = _dict(_dict(self.run.get("adapters")).get(self.rec["adapter"])).get("version", "?")
        return _str(v, 200)

    @cached_property
    def framework(self) -> str:
        return framework_of(self.run, self.rec["adapter"], self.rec.get("framework"))

    @cached_property
    def dtype(self) -> str:
        return case_dtype(self.rec["case_id"])


def framework_of(run: dict, adapter: str, recorded=None) -> str:
    """An adapter's framework: as the record says, else its run header, else its name's first part."""
    fw = recorded or _dict(_dict(run.get("adapters")).get(adapter)).get("framework")
    return _str(fw, 200) if fw else adapter.split(".")[0]


@dataclass
class Model:
    inputs: list[str]
    runs: list[dict] = field(default_factory=list)
    run_sources: dict = field(default_factory=dict)     # run_id -> [files]
    ends: dict = field(default_factory=dict)            # run_id -> end record
    fingerprints: dict = field(default_factory=dict)    # (adapter, device) -> fingerprint record (latest run)
    rows: list[CaseRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # records load skipped (cut or broken lines of part files)
    duplicates: int = 0
    superseded: int = 0

    def run(self, run_id: str) -> dict:
        return next((r for r in self.runs if r["run_id"] == run_id), {})


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
                    except (json.JSONDecodeError, RecursionError):
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
    other = {f: v for f, v in versions.items() if any(s != SCHEMA or n not in READABLE_VERSIONS for s, n in v)}
    if other:
        lines = [f"  {f}: " + ", ".join(f"schema {s!r} version {n!r}" for s, n in sorted(v, key=repr))
                 for f, v in sorted(versions.items())]
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise ReportError("cannot build one report from these results: this report reads schema "
                          f"{SCHEMA!r} versions {readable} only (reports/SCHEMA.md), and "
                          f"{len(other)} file(s) hold other versions:\n" + "\n".join(lines) +
                          "\nBuild their report with the suite version that wrote them.")
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
    fps: dict[tuple, tuple] = {}
    for f in files:
        try:
            records = load(f, warnings=m.warnings)      # one file at a time: every record keeps its origin
        except ResultsError as exc:
            raise ReportError(str(exc)) from None
        for r in records:
            kind = r["type"]
            if kind == "run":
                runs.setdefault(r["run_id"], r)
                srcs = m.run_sources.setdefault(r["run_id"], [])
                if str(f) not in srcs:
                    srcs.append(str(f))
                continue
            run = runs[r["run_id"]]
            if kind == "end":
                m.ends[r["run_id"]] = r
                continue
            if kind == "fingerprint":      # the latest run's measurement of each target
                k = (r["adapter"], r["device"])
                if k not in fps or str(fps[k][0].get("started", "")) <= str(run.get("started", "")):
                    fps[k] = (run, r)
                continue
            ident = (r["run_id"], r["adapter"], r["device"], r["case_id"])
            if ident in seen:
                m.duplicates += 1
                continue
            seen.add(ident)
            row = CaseRow(r, run, str(f))
            old = by_key.get(row.key)
            if old is not None:
                m.superseded += 1
                if str(old.run.get("started", "")) > str(row.run.get("started", "")):
                    continue
            by_key[row.key] = row
    m.fingerprints = {k: v[1] for k, v in sorted(fps.items())}
    m.runs = sorted(runs.values(), key=lambda r: (str(r.get("started", "")), r["run_id"]))
    m.rows = sorted(by_key.values(), key=lambda c: c.key)
    return m


# -- run status -----------------------------------------------------------------------------------

def run_status(m: Model, run: dict) -> dict:
    """How a run ended: its end record's status, or "interrupted" (no end record: it was
    interrupted or is still running). ``partial`` also when the header's selection says so."""
    end = m.ends.get(run["run_id"])
    sel = _dict(run.get("selection"))
    if end is None:
        status, why = "interrupted", "no end record: the run was interrupted or is still in progress"
    else:
        status = _str(end.get("status"), 40) or "complete"
        why = {"interrupted": "the end record says it was interrupted",
               "partial": "it ran a subset of the suite"}.get(status, "")
    if status == "complete" and sel.get("partial") is True:
        status, why = "partial", "its selection ran a subset of the suite"
    picked = []
    for k in ("adapters", "devices", "cases"):
        vs = _strs(sel.get(k))
        if vs:
            picked.append(f"--{k[:-1]} " + " ".join(vs[:6]) + (" …" if len(vs) > 6 else ""))
    for k, flag in (("keyword", "-k"), ("markers", "-m")):
        if sel.get(k):
            picked.append(f"{flag} {_str(sel.get(k), 200)}")
    return {"status": status, "why": why, "end": end, "selection": ", ".join(picked)}


def machines(m: Model) -> list[str]:
    out = []
    for run in m.runs:
        pf = _dict(run.get("platform"))
        name = " · ".join(x for x in (_str(pf.get("cpu"), 200), _str(pf.get("system"), 200)) if x) or "unknown machine"
        if name not in out:
            out.append(name)
    return out


def devices(m: Model) -> list[str]:
    ds = {r.rec["device"] for r in m.rows} | {k[1] for k in m.fingerprints}
    for run in m.runs:
        ds |= {_str(d, 200) for d in _dict(_dict(run.get("platform")).get("devices"))}
    return sorted(ds, key=lambda d: (d != "cpu", d))


# -- findings -------------------------------------------------------------------------------------

def describe_condition(key: str, want) -> str:
    """One condition of a finding's ``when`` as text: "dtype in {float16, bfloat16}", "offset >= 1e3"."""
    neg = key.startswith("not_")
    k = key[4:] if neg else key
    if isinstance(want, list):
        vals = ", ".join(_str(w, 100) for w in want)
        return f"{k} {'not in' if neg else 'in'} {{{vals}}}"
    if isinstance(want, str):
        op, _, rest = want.strip().partition(" ")
        if op in ("<", "<=", ">", ">=", "!=") and rest:
            if neg:
                return f"not ({k} {op} {_str(rest, 100)})"
            return f"{k} {op} {_str(rest, 100)}"
    if isinstance(want, bool):
        want = "true" if want else "false"
    return f"{k} {'≠' if neg else '='} {_str(want, 100)}"


def describe_when(when) -> str:
    """A finding's predicate as text: alternatives joined by "or", conditions by "and"."""
    if when is None or when == [] or when == {}:
        return "every case"
    alts = when if isinstance(when, list) else [when]
    parts = []
    for alt in alts[:50]:
        if isinstance(alt, dict):
            conds = [describe_condition(_str(k, 100), v) for k, v in list(alt.items())[:30]]
            parts.append(" and ".join(conds) if conds else "every case")
        else:
            parts.append(_str(alt, 300))
    text = " or ".join(f"({p})" if len(parts) > 1 and " and " in p else p for p in parts)
    return _str(text, 4000)


def describe_envelope(env) -> str:
    env = _dict(env)
    if not env:
        return ""
    out = []
    r = num(env.get("max_ratio"))
    if r is not None and math.isfinite(r):
        out.append(f"error/tolerance at most {r:g}")
    pat = _str(env.get("pattern"), 40)
    if pat == "nonfinite":
        out.append("NaN/Inf-pattern failures only")
    elif pat == "finite":
        out.append("finite errors only")
    elif pat and pat != "any":
        out.append(f"pattern {pat}")
    return "; ".join(out) or "any failure of the named checks"


def catalogue(m: Model) -> dict[str, dict]:
    """Every finding the run headers carry (the latest run's text of an id wins), plus every
    finding/deviation id a record names without text (v1 results): id -> finding."""
    out: dict[str, dict] = {}
    for run in m.runs:      # oldest first: later runs overwrite
        for fid, f in _dict(run.get("findings")).items():
            if not isinstance(f, dict):
                continue
            fid = _str(fid, 400)
            sev = _str(f.get("severity"), 20)
            evidence = _str(f.get("evidence"), 20000)
            out[fid] = {
                "id": fid, "known": True, "legacy": False, "title": _str(f.get("title"), 500),
                "severity": sev if sev in SEVERITIES else "low",
                "adapters": _strs(f.get("adapters")), "versions": _str(f.get("versions"), 400),
                "devices": _strs(f.get("devices")) or ["*"], "checks": _strs(f.get("checks")),
                "when": describe_when(f.get("when")), "envelope": describe_envelope(f.get("envelope")),
                "reason": _str(f.get("reason"), 20000), "evidence": evidence, "urls": urls(evidence)[:20],
                "source": _str(f.get("source"), 400), "run": run["run_id"],
            }
    for ident in _referenced(m):
        if ident not in out:
            out[ident] = {"id": ident, "known": False, "legacy": True, "title": "", "severity": "", "adapters": [],
                          "versions": "", "devices": [], "checks": [], "when": "", "envelope": "", "reason": "",
                          "evidence": "", "urls": [], "source": "", "run": ""}
    return out


def _referenced(m: Model) -> list[str]:
    seen = set()
    for r in m.rows:
        for c in r.checks:
            f = check_finding(c)
            if f:
                seen.add(f)
        for ref in r.rec.get("findings") or []:
            if isinstance(ref, dict) and ref.get("id"):
                seen.add(_str(ref["id"], 400))
    for fp in m.fingerprints.values():
        for f in _dict(fp.get("fields")).values():
            if isinstance(f, dict) and (f.get("finding") or f.get("deviation")):
                seen.add(_str(f.get("finding") or f.get("deviation"), 400))
    return sorted(seen)


def legacy_group(ident: str) -> str:
    """v1 deviation ids expanded per adapter and check ("flax-fast-variance--flax.linen.jit--y")
    group under their first part."""
    return ident.split("--", 1)[0]


# -- per-framework profiles (the first screen) ----------------------------------------------------

@dataclass
class _FStat:
    matched: int = 0
    triggered: int = 0
    cases: set = field(default_factory=set)          # rows where a check was attributed
    checks: Counter = field(default_factory=Counter)  # attributed check names
    ratio: float | None = None
    example: CaseRow | None = None
    example_ratio: float = -1.0
    fp_matched: int = 0
    fp_triggered: int = 0
    members: set = field(default_factory=set)         # v1: the deviation ids grouped here
    xpass: list = field(default_factory=list)         # v1: targets where it matched and no longer reproduced
    targets: list = field(default_factory=list)       # end-record judgements


def _adapters_by_framework(m: Model) -> dict[str, dict]:
    out: dict[str, dict] = {}

    def add(fw, adapter, version=None, devs=(), convention=None, origin=None):
        p = out.setdefault(fw, {"adapters": {}, "versions": set(), "devices": set()})
        a = p["adapters"].setdefault(adapter, {"name": adapter, "conventions": set(), "origin": ""})
        if version:
            p["versions"].add(_str(version, 200))
        p["devices"].update(devs)
        if convention:
            a["conventions"].add(_str(convention, 200))
        if origin and origin != "built-in":
            a["origin"] = _str(origin, 400)

    for run in m.runs:
        for name, a in _dict(run.get("adapters")).items():
            a = _dict(a)
            add(framework_of(run, name, a.get("framework")), name, a.get("version"), [], a.get("convention"),
                a.get("origin"))
    for r in m.rows:
        add(r.framework, r.rec["adapter"], r.version, [r.rec["device"]], r.rec.get("convention"))
    for (adapter, device), fp in m.fingerprints.items():
        run = m.run(fp["run_id"])
        add(framework_of(run, adapter, fp.get("framework")), adapter, fp.get("version"), [device],
            fp.get("convention"))
    return out


def _conventions_by_adapter(m: Model) -> dict[str, tuple[str, dict]]:
    out = {}
    for run in m.runs:
        presets = _dict(run.get("conventions"))
        for name, a in _dict(run.get("adapters")).items():
            cname = _str(_dict(a).get("convention"), 200)
            out[name] = (cname, _dict(presets.get(cname)))
    return out


def _fingerprint_rows(m: Model, adapters: list[str]) -> tuple[list[dict], list[str], list[tuple[str, list[str]]]]:
    """Declared vs measured per field for a framework's adapters: one row per field and
    distinct (declared, measured, mismatch, finding), naming the targets when they differ.
    A field some targets could not measure ("not measured ...") is left to a note naming
    them, unless no target measured it. Returns (rows, adapters without a fingerprint,
    [(target, fields it did not measure)])."""
    conv = _conventions_by_adapter(m)
    groups: dict[str, dict] = {}
    unmeasured: dict[str, dict[str, list]] = defaultdict(dict)      # field -> target -> (declared, value, evidence)
    measured_adapters = set()
    for (adapter, device), fp in m.fingerprints.items():
        if adapter not in adapters:
            continue
        measured_adapters.add(adapter)
        target = f"{adapter}@{device}" if device != "cpu" else adapter
        cname, preset = conv.get(adapter, (_str(fp.get("convention"), 200), {}))
        for fname, f in _dict(fp.get("fields")).items():
            fname = _str(fname, 200)
            if fname == "layouts" and "channel_axis" in _dict(fp.get("fields")):
                continue
            if isinstance(f, dict):
                value, evidence = f.get("value"), f.get("evidence")
                declared = preset.get(fname, "—")
                mismatch = bool(f.get("mismatch", value != declared if fname in preset else False))
                finding = f.get("finding") or f.get("deviation")
            else:
                value, evidence, declared = f, "", preset.get(fname, "—")
                mismatch, finding = fname in preset and value != declared, None
            key = (_str(declared, 300), _str(value, 300), mismatch, _str(finding, 400))
            if not mismatch and key[1].startswith("not measured"):
                unmeasured[fname][target] = (key[0], key[1], _str(evidence, 600))
                continue
            g = groups.setdefault(fname, {}).setdefault(key, {"targets": [], "evidence": _str(evidence, 600)})
            g["targets"].append(target)
    rows = []
    order = {f: i for i, f in enumerate(FP_ORDER)}
    notes: dict[str, list[str]] = defaultdict(list)
    for fname in sorted(set(groups) | set(unmeasured), key=lambda f: (order.get(f, len(order)), f)):
        variants = groups.get(fname)
        if not variants:           # nobody measured it
            declared, _, evidence = next(iter(unmeasured[fname].values()))
            rows.append({"field": fname, "declared": declared, "measured": "not measured", "mismatch": False,
                         "finding": "", "evidence": evidence, "targets": [], "state": "na"})
            continue
        for target in unmeasured.get(fname, {}):
            notes[target].append(fname)
        for (declared, value, mismatch, finding), g in sorted(variants.items(), key=lambda kv: (not kv[0][2], kv[0])):
            rows.append({"field": fname, "declared": declared, "measured": value, "mismatch": mismatch,
                         "finding": finding, "evidence": g["evidence"],
                         "targets": sorted(set(g["targets"])) if len(variants) > 1 else [],
                         "state": "mm" if mismatch else ("na" if value.startswith("not ") else "ok")})
    missing = sorted(set(adapters) - measured_adapters)
    return rows, missing, sorted(notes.items())


def profiles(m: Model, cat: dict[str, dict], unexplained_cap: int = 6, findings_cap: int = 40) -> list[dict]:
    """One profile per framework: versions, adapters, devices, measured conventions, the
    findings that explain its failures (one line each, by severity), the failures nothing
    explains, and what conforms (per check family)."""
    by_fw = _adapters_by_framework(m)
    fw_of_adapter = {a: fw for fw, p in by_fw.items() for a in p["adapters"]}
    stats: dict[str, dict[str, _FStat]] = defaultdict(dict)
    verdicts: dict[str, Counter] = defaultdict(Counter)
    fams: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    failing: dict[str, list[CaseRow]] = defaultdict(list)

    def st(fw: str, fid: str) -> _FStat:
        key = fid if fid in cat and cat[fid]["known"] else legacy_group(fid)
        s = stats[fw].get(key)
        if s is None:
            s = stats[fw][key] = _FStat()
        if key != fid:
            s.members.add(fid)
        return s

    for r in m.rows:
        fw = r.framework
        verdicts[fw][r.verdict] += 1
        if r.verdict in FAILING:
            failing[fw].append(r)
        for ref in r.rec.get("findings") or []:
            if isinstance(ref, dict) and ref.get("id"):
                s = st(fw, _str(ref["id"], 400))
                s.matched += 1
                s.triggered += bool(ref.get("triggered"))
        for c in r.checks:
            fam = c.get("family") if c.get("family") in FAMILIES else "property"
            v = str(c.get("verdict"))
            fams[fw][fam][v] += 1
            fid = check_finding(c)
            if not fid:
                continue
            s = st(fw, fid)
            if v == "xpass":        # v1: the deviation matched and the check passed: no longer reproduces
                s.xpass.append(f"{r.rec['adapter']}@{r.rec['device']}")
                continue
            s.cases.add(id(r))
            s.checks[_str(c.get("name"), 200)] += 1
            ratio = num(c.get("ratio"))
            s.ratio = max_ratio([s.ratio, ratio])
            rk = -1.0 if ratio is None or math.isnan(ratio) else ratio
            if s.example is None or rk > s.example_ratio or (rk == s.example_ratio and rerun_line(r.rec)
                                                               and not rerun_line(s.example.rec)):
                s.example, s.example_ratio = r, rk
    for (adapter, device), fp in m.fingerprints.items():
        fw = fw_of_adapter.get(adapter, adapter.split(".")[0])
        for ref in fp.get("findings") or []:
            if isinstance(ref, dict) and ref.get("id"):
                s = st(fw, _str(ref["id"], 400))
                s.fp_matched += 1
                s.fp_triggered += bool(ref.get("triggered"))
        for fname, f in _dict(fp.get("fields")).items():
            fid = isinstance(f, dict) and (f.get("finding") or f.get("deviation"))
            if fid:
                s = st(fw, _str(fid, 400))
                s.checks[f"fingerprint.{_str(f.get('probe') or fname, 100)}"] += 1
                if not (fp.get("findings")):
                    s.fp_triggered += 1
    for end in m.ends.values():
        for j in end.get("findings") or []:
            if not isinstance(j, dict):
                continue
            adapter = _str(j.get("adapter"), 400)
            fw = fw_of_adapter.get(adapter, adapter.split(".")[0])
            st(fw, _str(j.get("id"), 400)).targets.append(
                {"adapter": adapter, "device": _str(j.get("device"), 200), "stale": j.get("stale") is True,
                 "exercised": j.get("exercised") is True, "matched": _int(j.get("matched")),
                 "triggered": _int(j.get("triggered")), "grid_cases": _int(j.get("grid_cases"))})
    # findings that apply to a framework's adapters (header patterns) but matched nothing here
    for fid, f in cat.items():
        if not f["known"] or not f["adapters"]:
            continue
        for fw, p in by_fw.items():
            if fid not in stats[fw] and any(fnmatch.fnmatchcase(a, pat) for a in p["adapters"] for pat in f["adapters"]):
                st(fw, fid)

    out = []
    for fw, p in by_fw.items():
        adapters = sorted(p["adapters"])
        lines, quiet = [], []
        for fid, s in stats[fw].items():
            f = cat.get(fid) or {"id": fid, "known": False, "legacy": True, "title": "", "severity": "",
                                 "checks": [], "urls": [], "evidence": ""}
            triggered = max(s.triggered, len(s.cases))
            stale = [f"{t['adapter']}@{t['device']}" for t in s.targets if t["stale"]] + sorted(set(s.xpass))
            named = f["checks"]
            failed = sorted(s.checks)
            line = {"id": fid, "f": f, "severity": f["severity"], "title": f["title"], "known": f["known"],
                    "members": sorted(s.members), "checks": named, "failed": failed,
                    "triggered": triggered, "matched": max(s.matched, triggered), "has_matched": s.matched > 0,
                    "fp_matched": s.fp_matched, "fp_triggered": s.fp_triggered, "ratio": s.ratio,
                    "example": s.example, "rerun": rerun_line(s.example.rec) if s.example else "",
                    "urls": f["urls"][:3], "stale": bool(stale),
                    "stale_targets": sorted(set(stale)), "stale_cases": len(s.xpass)}
            if triggered or s.fp_triggered or stale:
                lines.append(line)
            else:
                quiet.append(line)
        sev = {s: i for i, s in enumerate(SEVERITIES)}
        lines.sort(key=lambda x: (sev.get(x["severity"], len(sev)), not x["stale"], -x["triggered"], x["id"]))
        quiet.sort(key=lambda x: (sev.get(x["severity"], len(sev)), x["id"]))
        fails = sorted(failing[fw], key=lambda r: (-severity(r.verdict), -(r.ratio if r.ratio is not None
                                                                            and not math.isnan(r.ratio) else -1.0), r.key))
        fp_rows, unmeasured, fp_partial = _fingerprint_rows(m, adapters)
        conform = []
        for fam in FAMILIES:
            c = fams[fw].get(fam)
            if not c:
                continue
            npass = sum(c[v] for v in PASSING)
            nbad = sum(n for v, n in c.items() if v in FAILING)
            conform.append({"family": fam, "pass": npass, "xfail": c["xfail"], "bad": nbad, "skip": c["skip"],
                            "total": sum(c.values()),
                            "state": "fails" if nbad else ("findings" if c["xfail"] else "conforms")})
        cases = verdicts[fw]
        out.append({
            "framework": fw, "versions": sorted(p["versions"]), "adapters": adapters,
            "origins": {a: p["adapters"][a]["origin"] for a in adapters if p["adapters"][a]["origin"]},
            "conventions": sorted({c for a in p["adapters"].values() for c in a["conventions"]}),
            "devices": sorted(p["devices"], key=lambda d: (d != "cpu", d)),
            "cases": dict(sorted(cases.items(), key=lambda kv: severity(kv[0]))), "ncases": sum(cases.values()),
            "npass": sum(cases[v] for v in PASSING), "nxfail": cases["xfail"],
            "nfail": len(fails), "unexplained": fails[:unexplained_cap],
            "findings": lines[:findings_cap], "findings_more": max(0, len(lines) - findings_cap),
            "quiet": quiet[:QUIET_CAP], "quiet_more": max(0, len(quiet) - QUIET_CAP),
            "high": sum(1 for x in lines if x["severity"] == "high"), "stale": sum(1 for x in lines if x["stale"]),
            "fingerprint": fp_rows[:FP_ROWS_CAP], "fp_more": max(0, len(fp_rows) - FP_ROWS_CAP),
            "unmeasured": unmeasured[:20], "fp_partial": fp_partial[:20],
            "fp_mismatch": sum(1 for r in fp_rows if r["mismatch"]),
            "fp_unexplained": sum(1 for r in fp_rows if r["mismatch"] and not r["finding"]),
            "conform": conform, "legacy": any(x["f"]["legacy"] for x in lines + quiet),
        })
    # frameworks with failures nothing explains first, then by high-severity and triggered findings
    out.sort(key=lambda p: (0 if p["nfail"] or p["fp_unexplained"] else 1, -p["high"], -len(p["findings"]),
                            p["framework"]))
    return out


# -- aggregates ---------------------------------------------------------------------------------

def matrix(m: Model) -> dict:
    """Rows (adapter, version, device, dtype) x FAMILIES: worst verdict, worst ratio, counts."""
    cells: dict = defaultdict(lambda: {"verdicts": Counter(), "ratio": None})
    cases: dict = defaultdict(Counter)
    for row in m.rows:
        rk = (row.rec["adapter"], row.version, row.rec["device"], row.dtype)
        cases[rk][row.verdict] += 1
        for c in row.checks:
            fam = c.get("family") if c.get("family") in FAMILIES else "property"
            cell = cells[(rk, fam)]
            cell["verdicts"][str(c.get("verdict"))] += 1
            cell["ratio"] = max_ratio([cell["ratio"], num(c.get("ratio"))])
    dorder = ("float16", "bfloat16", "float32", "float64", "?")
    out_rows = []
    for rk in sorted(cases, key=lambda k: (k[0], k[2], k[1], dorder.index(k[3]) if k[3] in dorder else 9)):
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
    c = Counter((r.rec["adapter"], _str(r.rec.get("skip_reason"))) for r in m.rows if r.verdict == "skip")
    return [{"adapter": a, "reason": reason, "count": n} for (a, reason), n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]


def cross_device(m: Model, cap: int) -> dict:
    """Same adapter and case on several devices: verdict and worst ratio side by side."""
    by: dict = defaultdict(dict)
    for r in m.rows:
        by[(r.rec["adapter"], r.rec["case_id"])][r.rec["device"]] = r
    devs = sorted({r.rec["device"] for r in m.rows}, key=lambda d: (d != "cpu", d))
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
                     "cells": [({"verdict": per[d].verdict, "ratio": per[d].ratio} if d in per else None) for d in devs]})
    rows.sort(key=lambda r: (r["same"], -r["spread"]))
    return {"devices": devs, "rows": rows[:cap], "total": len(rows), "agree": agree, "capped": max(0, len(rows) - cap)}


def finding_table(m: Model, cat: dict[str, dict], cap: int) -> list[dict]:
    """Every finding with its full text and what it did in these results: cases where it was
    listed (matched) and where it explained a failure (triggered), per check verdict, and the
    end records' per-target judgement."""
    matched, triggered, verdicts = Counter(), Counter(), defaultdict(Counter)
    for r in m.rows:
        for ref in r.rec.get("findings") or []:
            if isinstance(ref, dict) and ref.get("id"):
                fid = _str(ref["id"], 400)
                matched[fid] += 1
                triggered[fid] += bool(ref.get("triggered"))
        for c in r.checks:
            fid = check_finding(c)
            if fid:
                verdicts[fid][str(c.get("verdict"))] += 1
    targets = defaultdict(list)
    for end in m.ends.values():
        for j in end.get("findings") or []:
            if isinstance(j, dict):
                targets[_str(j.get("id"), 400)].append(
                    {"target": f"{_str(j.get('adapter'), 400)}@{_str(j.get('device'), 200)}",
                     "matched": _int(j.get("matched")), "triggered": _int(j.get("triggered")),
                     "grid_cases": _int(j.get("grid_cases")), "exercised": j.get("exercised") is True,
                     "stale": j.get("stale") is True})
    sev = {s: i for i, s in enumerate(SEVERITIES)}
    out = []
    for fid, f in cat.items():
        out.append(f | {"matched": matched[fid], "triggered": triggered[fid], "verdicts": dict(verdicts[fid]),
                        "targets": targets.get(fid, [])[:50],
                        "stale": any(t["stale"] for t in targets.get(fid, [])) or bool(verdicts[fid]["xpass"])})
    out.sort(key=lambda f: (not f["known"], sev.get(f["severity"], 9), -f["triggered"] - sum(f["verdicts"].values()),
                            f["id"]))
    return out[:cap]
