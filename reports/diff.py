"""Compare two runs: what a framework upgrade, another machine or a suite change moved.

    python -m bn_conformance.reports diff RUN_A RUN_B [-o diff.html] [--fail-on failures|changes]

RUN_A and RUN_B are run folders or results files. The comparison is per (adapter, device,
case) and per check:

  new failures      a failing verdict in B where A passed, skipped, xfailed, or had no case
  fixed             a failing verdict in A that B no longer has
  verdict changes   every other change of a case's verdict (pass <-> xfail, pass <-> skip, ...)
  findings          findings that triggered in one run and not in the other
  ratio moves       checks whose error/tolerance ratio moved by more than RATIO_FACTOR with
                    at least one side at or above RATIO_FLOOR
  coverage          cases present in one run only

Why a factor of 10 above 0.1: a ratio is an error divided by a bound that holds with high
probability for every honest summation order (conformance/tolerance.py); between machines,
thread counts and instruction sets an implementation's error moves within that bound.
Measured on the default suite between native AVX-512 and ``XLA_FLAGS=--xla_cpu_max_isa=AVX2``
(8,711 checks with a ratio at or above 0.1 on either side): of the 5,623 that pass on both,
none moved by 7x or more (the largest, 7.0x, the exact tier's y_eval, 0.10 against 0.014: a
few roundings); the only moves beyond 10x were three checks that a finding already explains,
where the result is a rounding residue of a one-pass or folded kernel on constant channels
or at a 1e8 offset (a factor of 16 to 1e31). Below 0.1 the errors are a few roundings and
their ratios scatter freely. A move by 10x of a check that passes is a change of algorithm
or precision, not of rounding.

Exit status: 0 when nothing the chosen ``--fail-on`` names happened, 1 when it did, 2 on a
usage or input error: ``failures`` (default) fails on new failures and newly triggered
findings, ``changes`` on any difference listed above.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bn_conformance.results import ResultsError, load
from bn_conformance.vocab import FAILING

RATIO_FACTOR = 10.0
RATIO_FLOOR = 0.1


def _num(v) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


@dataclass
class Side:
    label: str
    runs: list = field(default_factory=list)
    cases: dict = field(default_factory=dict)      # (adapter, device, case_id) -> record
    triggered: dict = field(default_factory=dict)  # finding id -> set of keys where it triggered


def read(path: Path) -> Side:
    side = Side(str(path))
    for r in load(Path(path)):
        if r["type"] == "run":
            side.runs.append(r)
        elif r["type"] == "case":
            key = (r["adapter"], r["device"], r["case_id"])
            side.cases[key] = r
            for f in r.get("findings") or []:
                if isinstance(f, dict) and f.get("triggered"):
                    side.triggered.setdefault(str(f.get("id")), set()).add(key)
            for c in r.get("checks") or []:       # results of suites that attributed per check
                if isinstance(c, dict) and c.get("verdict") == "xfail" and c.get("deviation"):
                    side.triggered.setdefault(str(c["deviation"]), set()).add(key)
    if not side.runs and not side.cases:
        raise ResultsError(f"{path}: holds no run")
    return side


@dataclass
class Diff:
    a: Side
    b: Side
    new_failures: list = field(default_factory=list)
    fixed: list = field(default_factory=list)
    changed: list = field(default_factory=list)
    ratio_moves: list = field(default_factory=list)
    findings_new: list = field(default_factory=list)
    findings_gone: list = field(default_factory=list)
    only_a: list = field(default_factory=list)
    only_b: list = field(default_factory=list)

    @property
    def regressions(self) -> int:
        return len(self.new_failures) + len(self.findings_new)

    @property
    def changes(self) -> int:
        return (len(self.new_failures) + len(self.fixed) + len(self.changed) + len(self.ratio_moves)
                + len(self.findings_new) + len(self.findings_gone) + len(self.only_a) + len(self.only_b))

    def transitions(self) -> Counter:
        return Counter((a, b) for _, a, b in self.changed + self.new_failures + self.fixed)


def compare(a: Side, b: Side) -> Diff:
    d = Diff(a, b)
    for key in sorted(set(a.cases) | set(b.cases)):
        ra, rb = a.cases.get(key), b.cases.get(key)
        if ra is None or rb is None:
            (d.only_b if ra is None else d.only_a).append(key)
            continue
        va, vb = str(ra["verdict"]), str(rb["verdict"])
        if vb in FAILING and va not in FAILING:
            d.new_failures.append((key, va, vb))
        elif va in FAILING and vb not in FAILING:
            d.fixed.append((key, va, vb))
        elif va != vb:
            d.changed.append((key, va, vb))
        ca = {c.get("name"): c for c in ra.get("checks") or [] if isinstance(c, dict)}
        for c in rb.get("checks") or []:
            if not isinstance(c, dict) or c.get("name") not in ca:
                continue
            x, y = _num(ca[c["name"]].get("ratio")), _num(c.get("ratio"))
            if x is None or y is None or math.isinf(x) or math.isinf(y) or max(x, y) < RATIO_FLOOR:
                continue
            lo, hi = sorted((x, y))
            if lo == 0 or hi / lo > RATIO_FACTOR:
                d.ratio_moves.append((key, c["name"], x, y))
    for fid in sorted(set(a.triggered) | set(b.triggered)):
        if fid in b.triggered and fid not in a.triggered:
            d.findings_new.append((fid, len(b.triggered[fid])))
        elif fid in a.triggered and fid not in b.triggered:
            d.findings_gone.append((fid, len(a.triggered[fid])))
    return d


def _key(k) -> str:
    return f"{k[0]}@{k[1]} {k[2]}"


def text(d: Diff, limit: int = 25) -> str:
    lines = [f"A: {d.a.label} ({len(d.a.cases)} cases)", f"B: {d.b.label} ({len(d.b.cases)} cases)", ""]

    def section(title, rows, fmt):
        lines.append(f"{title}: {len(rows)}")
        for r in rows[:limit]:
            lines.append("  " + fmt(r))
        if len(rows) > limit:
            lines.append(f"  ... and {len(rows) - limit} more")

    section("new failures", d.new_failures, lambda r: f"{_key(r[0])}: {r[1]} -> {r[2]}")
    section("fixed", d.fixed, lambda r: f"{_key(r[0])}: {r[1]} -> {r[2]}")
    section("other verdict changes", d.changed, lambda r: f"{_key(r[0])}: {r[1]} -> {r[2]}")
    section("findings triggered only in B", d.findings_new, lambda r: f"{r[0]} ({r[1]} cases)")
    section("findings triggered only in A", d.findings_gone, lambda r: f"{r[0]} ({r[1]} cases)")
    section(f"error ratios moved more than {RATIO_FACTOR:g}x (at or above {RATIO_FLOOR:g})", d.ratio_moves,
            lambda r: f"{_key(r[0])} {r[1]}: {r[2]:.3g} -> {r[3]:.3g}")
    section("cases only in A", d.only_a, _key)
    section("cases only in B", d.only_b, _key)
    lines.append("")
    lines.append(f"{d.regressions} regression(s), {d.changes} change(s)")
    return "\n".join(lines)


def html(d: Diff) -> str:
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).with_name("templates"))),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("diff.html.j2").render(d=d, key=_key, factor=RATIO_FACTOR, floor=RATIO_FLOOR)


def main(a: Path, b: Path, out: Path | None, fail_on: str) -> int:
    from .build import write_atomic
    d = compare(read(a), read(b))
    print(text(d))
    if out is not None:
        write_atomic(out, html(d))
        print(f"diff report: {out}")
    return 1 if (d.regressions if fail_on == "failures" else d.changes) else 0
