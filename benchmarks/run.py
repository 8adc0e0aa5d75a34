"""Benchmark the default conformance run: where the time goes.

    python benchmarks/run.py [-n 2] [--out benchmarks/latest.json] [-- extra pytest args]

Runs ``pytest conformance/`` once (all installed default adapters, CPU) into a scratch
results folder, then reads the per-case timings the results file records and prints:

  * total wall time of the run;
  * per adapter: cases, time inside the framework (adapter calls), time compiling (for
    adapters that report it), and its share;
  * the suite's own work: input generation, reference computation, comparison, and
    the remainder (process start-up, imports, collection, results writing, report),
    with its share of the time spent in framework calls.

It writes the same figures as JSON (``--out``). It is a benchmark, not a test: it
asserts nothing and always exits 0 unless pytest itself could not run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bn_conformance.results import load  # noqa: E402


def summarise(records: list[dict], wall_s: float, workers: int) -> dict:
    per = defaultdict(lambda: defaultdict(float))
    suite = defaultdict(float)
    for r in records:
        if r["type"] != "case":
            continue
        t = r.get("timings") or {}
        a = per[r["adapter"]]
        a["cases"] += 1
        a["adapter_s"] += t.get("adapter_s", 0.0)
        a["compile_s"] += t.get("compile_s") or 0.0
        for k in ("inputs_s", "reference_s", "compare_s"):
            suite[k] += t.get(k, 0.0)
    framework_s = sum(a["adapter_s"] for a in per.values())
    measured_suite = sum(suite.values())
    cpu_budget = wall_s * workers                       # process-seconds available in the run
    remainder = max(cpu_budget - framework_s - measured_suite, 0.0)
    return {
        "wall_s": wall_s, "workers": workers, "framework_s": framework_s,
        "suite": dict(suite) | {"startup_collection_io_s": remainder},
        "overhead_share_of_framework": (measured_suite / framework_s) if framework_s else None,
        "overhead_incl_startup_share": ((measured_suite + remainder) / framework_s) if framework_s else None,
        "adapters": {k: dict(v) for k, v in sorted(per.items())},
    }


def table(s: dict) -> str:
    lines = [f"wall time {s['wall_s']:.1f} s with {s['workers']} worker(s); time in framework calls "
             f"{s['framework_s']:.1f} s (process-seconds)", "",
             f"{'adapter':32s} {'cases':>6s} {'framework s':>12s} {'compile s':>10s} {'share':>6s}"]
    for name, a in s["adapters"].items():
        share = a["adapter_s"] / s["framework_s"] if s["framework_s"] else 0
        lines.append(f"{name:32s} {int(a['cases']):6d} {a['adapter_s']:12.1f} {a['compile_s']:10.1f} {share:6.1%}")
    su = s["suite"]
    lines += ["", "suite's own work (process-seconds):",
              f"  inputs {su.get('inputs_s', 0):.1f} s, reference {su.get('reference_s', 0):.1f} s, "
              f"comparison {su.get('compare_s', 0):.1f} s",
              f"  start-up, imports, collection, results and report (remainder): {su['startup_collection_io_s']:.1f} s",
              f"  overhead / framework time: {s['overhead_share_of_framework']:.1%} measured per case, "
              f"{s['overhead_incl_startup_share']:.1%} including the remainder"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2, help="pytest-xdist workers (0: one process)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "latest.json"))
    ap.add_argument("--keep", help="keep the run's results folder here (e.g. to publish it)")
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        cmd = [sys.executable, "-m", "pytest", "conformance/", "-q", "-p", "no:randomly", "--results-dir", tmp,
               *(["-n", str(args.n)] if args.n else []), *args.pytest_args]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        tail = [ln for ln in proc.stdout.splitlines() if " passed" in ln or " failed" in ln][-1:]
        if proc.returncode not in (0, 1):
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        records = load(Path(tmp))
    s = summarise(records, wall, max(args.n, 1))
    s |= {"command": " ".join(cmd[1:]), "pytest_summary": tail[0].strip("= ") if tail else "",
          "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.machine(),
          "cpus": os.cpu_count(), "python": platform.python_version()}
    print(table(s))
    print(f"\npytest: {s['pytest_summary']}")
    Path(args.out).write_text(json.dumps(s, indent=2) + "\n")
    print(f"record: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
