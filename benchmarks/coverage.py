"""Which grid cases trigger each finding and catch each planted bug: the evidence the default
tier is built from (conformance/tiers.py) and checked against (tests/test_tiers.py).

    python benchmarks/coverage.py RUN_FULL [--out conformance/coverage.json]

RUN_FULL is a run folder or results file of ``pytest conformance/ --tier full``. Writes, per
(adapter, finding), the grid cases of the full run on which it triggered (hypothesis cases
are left out: they change with hypothesis versions), and, per planted bug of
tests/planted/backends.py and check it must be caught on, the grid cases on which the suite
reports it (computed here: the planted backends are NumPy). Prints what the default tier
would lose (nothing, by construction, once the file is rewritten and the tier rebuilt).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

from bn_conformance import grid, tiers
from bn_conformance.results import load


def triggers(records: list[dict]) -> dict:
    full = {c.id for c in grid.all_cases()}
    out: dict = defaultdict(set)
    for r in records:
        if r.get("type") != "case" or r["case_id"] not in full:
            continue
        for f in r.get("findings") or []:
            if f.get("triggered"):
                out[f"{r['adapter']}@{r['device']} {f['id']}"].add(r["case_id"])
    return {k: sorted(v) for k, v in sorted(out.items())}


def planted() -> dict:
    """planted bug -> check name -> grid cases on which the suite reports it (full grid)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.planted.backends import BUGS, caught_on
    return {bug: {k: sorted(v) for k, v in sorted(caught_on(bug, grid.all_cases()).items())} for bug in sorted(BUGS)}


def lost(trig: dict) -> list[str]:
    default = {c.id for c in tiers.all_cases("default")}
    return [k for k, ids in trig.items() if not set(ids) & default]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, nargs="?")
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "conformance" / "coverage.json")
    ap.add_argument("--planted-only", action="store_true",
                    help="recompute only the planted bugs' part of --out (RUN_FULL is not read)")
    args = ap.parse_args(argv)
    if args.planted_only:
        data = json.loads(args.out.read_text())
        data["planted"] = planted()
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        return 0
    records = load(args.run)
    header = next(r for r in records if r["type"] == "run")
    trig = triggers(records)
    gone = lost(trig)
    args.out.write_text(json.dumps({"run_id": header["run_id"], "tier": header.get("selection", {}).get("tier"),
                                    "date": time.strftime("%Y-%m-%d", time.gmtime()),
                                    "adapters": {a: v.get("version") for a, v in header["adapters"].items()},
                                    "triggers": trig, "planted": planted()}, indent=1) + "\n")
    print(f"{len(trig)} (adapter, finding) pairs triggered in the full run; the default tier loses {len(gone)}")
    for k in gone:
        print(f"  lost: {k}: {trig[k][:3]}")
    return 1 if gone else 0


if __name__ == "__main__":
    sys.exit(main())
