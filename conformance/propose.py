"""Draft finding entries from a run's unexplained failures (a starting point, never an entry).

    python -m bn_conformance.propose RESULTS [--adapter GLOB]

Reads a run folder or results file, takes every failing check no finding explains, groups
them by adapter and check family, and prints one ``[[finding]]`` skeleton per group: the
adapters, the checks that failed, a ``when`` predicate holding the case facts every failing
case of the group shares (``findings.facts``), the observed cases and worst ratios as
comments. Its ``title``, ``reason`` and ``evidence`` say TODO, and the findings loader refuses
an entry whose reason or evidence is a TODO: a person has to find the mechanism (source line,
issue, measurement), narrow the predicate to it, and write it down before an entry exists.
"""
from __future__ import annotations

import argparse
import fnmatch
import sys
from collections import defaultdict
from pathlib import Path

from .case import BadDescriptor, parse
from .findings import facts
from .results import ResultsError, load
from .vocab import FAILING, family

_GROUP_FACTS = ("mode", "dtype", "layout", "dist", "channel", "affine", "track", "stats", "replicas")


def unexplained(records: list[dict]) -> dict:
    """{(adapter, family): [(case_id, check name, ratio, detail)]} of failing, unattributed checks."""
    out = defaultdict(list)
    for r in records:
        if r.get("type") != "case":
            continue
        for c in r.get("checks") or []:
            if c.get("verdict") in FAILING and not c.get("finding") and not c.get("deviation"):
                out[(r["adapter"], family(str(c.get("name"))))].append(
                    (r["case_id"], c.get("name"), c.get("ratio"), str(c.get("detail") or "")[:160]))
    return out


def _when(case_ids: list[str]) -> dict:
    shared: dict = {}
    for i, cid in enumerate(case_ids):
        try:
            f = facts(parse(cid))
        except BadDescriptor:
            continue
        for k in _GROUP_FACTS:
            if i == 0:
                shared[k] = {f[k]}
            elif k in shared:
                shared[k].add(f[k])
    return {k: sorted(v, key=str) for k, v in shared.items() if len(v) <= 4}


def _toml_value(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return '"none"'
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def skeleton(adapter: str, fam: str, rows: list) -> str:
    cases = sorted({r[0] for r in rows})
    checks = sorted({str(r[1]) for r in rows})
    when = _when(cases)
    lines = [f"# {len(rows)} failing check(s) on {len(cases)} case(s); worst ratio "
             f"{max((r[2] for r in rows if isinstance(r[2], (int, float))), default='n/a')}",
             *[f"#   {cid} {name}: {detail}" for cid, name, _, detail in rows[:8]],
             "[[finding]]",
             f'id = "{adapter.split(".")[0]}-TODO-{fam}"',
             'title = "TODO: what a user would notice"',
             'severity = "medium"',
             f"adapters = {_toml_value([adapter])}",
             'versions = ">=0"',
             f"checks = {_toml_value(checks)}",
             "when = [{" + ", ".join(f"{k} = {_toml_value(v if len(v) > 1 else v[0])}" for k, v in when.items()) + "}]",
             'reason = "TODO: the mechanism, from the source"',
             'evidence = "TODO: source file and line, issue, measurement"', ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bn_conformance.propose", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="a run folder or results file")
    ap.add_argument("--adapter", default="*", help="only adapters matching this glob")
    args = ap.parse_args(argv)
    try:
        records = load(args.results)
    except ResultsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    groups = {k: v for k, v in unexplained(records).items() if fnmatch.fnmatchcase(k[0], args.adapter)}
    if not groups:
        print("# every failing check of this run is explained by a finding")
        return 0
    for (adapter, fam), rows in sorted(groups.items()):
        print(skeleton(adapter, fam, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
