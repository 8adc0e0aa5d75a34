"""python -m bn_conformance.reports COMMAND

  build RESULTS_DIR                  report of one run folder, written to RESULTS_DIR/report.html
  merge RESULTS... -o report.html    one report from several runs (machines, devices, versions)
  publish RESULTS... -o DIR          compact results.jsonl.gz plus report.html for the repository
  diff RUN_A RUN_B [-o diff.html]    what changed between two runs (exit 1 on regressions)
  prune [--root DIR] [--keep N]      remove old run folders, keeping the newest N and latest

RESULTS are run folders, results.jsonl files or part files. Exit status 2: bad input.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .build import build_report
from .model import ReportError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bn_conformance.reports", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mp = sub.add_parser("merge", help="merge results files/folders into one report")
    mp.add_argument("results", nargs="+", type=Path, help="results.jsonl files, part files, or results folders")
    mp.add_argument("-o", "--output", type=Path, required=True, help="the HTML file to write")
    bp = sub.add_parser("build", help="report of one results folder, written to RESULTS_DIR/report.html")
    bp.add_argument("results_dir", type=Path)
    pp = sub.add_parser("publish", help="compact results.jsonl.gz plus report.html for the repository")
    pp.add_argument("results", nargs="+", type=Path)
    pp.add_argument("-o", "--output", type=Path, required=True, help="the folder to write (reports/published)")
    dp = sub.add_parser("diff", help="compare two runs")
    dp.add_argument("a", type=Path, help="the earlier run: a run folder or results file")
    dp.add_argument("b", type=Path, help="the later run")
    dp.add_argument("-o", "--output", type=Path, help="also write an HTML rendering here")
    dp.add_argument("--fail-on", choices=("failures", "changes"), default="failures",
                    help="exit 1 on new failures and newly triggered findings (default), or on any change")
    rp = sub.add_parser("prune", help="remove old run folders")
    rp.add_argument("--root", type=Path, default=Path("reports"), help="the results root (default ./reports)")
    rp.add_argument("--keep", type=int, default=5, help="how many of the newest runs to keep (default 5)")
    return ap


def _inputs_overlap(inputs: list[Path], out: Path) -> bool:
    out = out.resolve()
    for p in inputs:
        p = p.resolve()
        if p == out or (p.is_dir() and out.parent == p and out.name.startswith("results")):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "diff":
            from .diff import main as diff_main
            if args.output is not None and _inputs_overlap([args.a, args.b], args.output):
                print(f"error: -o {args.output} would overwrite an input", file=sys.stderr)
                return 2
            return diff_main(args.a, args.b, args.output, args.fail_on)
        if args.cmd == "prune":
            from bn_conformance.session import prune
            removed = prune(args.root, max(args.keep, 0))
            for p in removed:
                print(f"removed {p}")
            print(f"{len(removed)} run folder(s) removed from {args.root / 'runs'}")
            return 0
        if args.cmd == "publish":
            from .publish import publish
            if _inputs_overlap(args.results, args.output / "results.jsonl.gz"):
                print(f"error: -o {args.output} would overwrite an input", file=sys.stderr)
                return 2
            data, report = publish(args.results, args.output)
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
        if _inputs_overlap(inputs, out):
            print(f"error: -o {out} would overwrite an input", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        path = build_report(inputs, out)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 -- a results-reading error names its file and line
        from bn_conformance.results import ResultsError
        if isinstance(exc, ResultsError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    print(f"{path} ({path.stat().st_size / 1024:.0f} KiB, {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
