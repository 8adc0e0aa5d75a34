"""python -m reports merge RESULTS... -o report.html | build RESULTS_DIR | publish RESULTS... -o DIR"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .build import build_report
from .model import ReportError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports", description="Build the HTML conformance report.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    mp = sub.add_parser("merge", help="merge results files/folders into one report")
    mp.add_argument("results", nargs="+", type=Path, help="results.jsonl files, part files, or results folders")
    mp.add_argument("-o", "--output", type=Path, required=True, help="the HTML file to write")
    bp = sub.add_parser("build", help="report of one results folder, written to RESULTS_DIR/report.html")
    bp.add_argument("results_dir", type=Path)
    pp = sub.add_parser("publish", help="compact results.jsonl.gz plus report.html for the repository")
    pp.add_argument("results", nargs="+", type=Path)
    pp.add_argument("-o", "--output", type=Path, required=True, help="the folder to write (reports/published)")
    args = ap.parse_args(argv)
    if args.cmd == "publish":
        from .publish import publish
        try:
            data, report = publish(args.results, args.output)
        except ReportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for f in (data, report):
            print(f"{f} ({f.stat().st_size / 1024:.0f} KiB)")
        return 0
    if args.cmd == "merge":
        inputs, out = args.results, args.output
    else:
        if not args.results_dir.is_dir():
            print(f"error: {args.results_dir}: not a folder", file=sys.stderr)
            return 2
        inputs, out = [args.results_dir], args.results_dir / "report.html"
    t0 = time.perf_counter()
    try:
        path = build_report(inputs, out)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"no report written ({out})", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {out}: {exc}", file=sys.stderr)
        return 2
    print(f"{path} ({path.stat().st_size / 1024:.0f} KiB, {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
