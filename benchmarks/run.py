"""Benchmark a conformance run: where the time goes.

    python benchmarks/run.py [-n 2] [--out benchmarks/latest.json] [--costs] [-- extra pytest args]
    python benchmarks/run.py --show benchmarks/latest.json [--markdown]

Runs ``pytest conformance/`` once (default tier, every installed default adapter, CPU; pass
``-- --tier full`` or ``-- --adapter NAME`` to change that) into a scratch results folder,
builds its report separately (timed), then reads the per-case timings the results record:

  * wall time of the run, and of the report;
  * per adapter: cases, time inside the framework, compilations and compile time (XLA,
    Inductor: adapters/scenario.py CompileLog), the first call's extra time (the framework's
    import, a worker's start-up), execution time, and its share;
  * the suite's own work per case: inputs, reference, comparison; the remainder of the
    process-seconds (interpreter start, plugin and framework imports, collection, results
    writing) and the share of framework time the suite's own work takes.

``--costs`` also writes each adapter's measured framework seconds to adapters/costs.json,
which orders the xdist groups (heaviest first) so the two workers finish together. It is a
benchmark, not a test: it asserts nothing and exits 0 unless pytest itself could not run.
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
    calls = defaultdict(list)
    suite = defaultdict(float)
    for r in records:
        if r["type"] != "case":
            continue
        t = r.get("timings") or {}
        a = per[r["adapter"]]
        a["cases"] += 1
        a["adapter_s"] += t.get("adapter_s", 0.0)
        a["compile_s"] += t.get("compile_s") or 0.0
        a["compiles"] += t.get("compiles") or 0
        if "adapter_s" in t:
            calls[r["adapter"]].append(t["adapter_s"] - (t.get("compile_s") or 0.0))
        for k in ("inputs_s", "reference_s", "compare_s"):
            suite[k] += t.get(k, 0.0)
    for name, a in per.items():
        # the first call of an adapter in a process pays its framework's import (or its worker's
        # start): the largest call beyond compilation, less a typical call
        xs = sorted(calls[name])
        first = (xs[-1] - xs[len(xs) // 2]) if len(xs) > 1 else 0.0
        a["first_call_s"] = first
        a["execute_s"] = a["adapter_s"] - a["compile_s"] - first
        a["per_case_ms"] = 1000.0 * a["execute_s"] / a["cases"] if a["cases"] else 0.0
        a["per_compile_s"] = a["compile_s"] / a["compiles"] if a["compiles"] else 0.0
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
    lines = [f"wall time {s['wall_s']:.1f} s with {s['workers']} worker(s); report {s.get('report_s', 0):.1f} s; "
             f"time in framework calls {s['framework_s']:.1f} s (process-seconds)", "",
             f"{'adapter':30s} {'cases':>6s} {'framework s':>11s} {'compiles':>8s} {'compile s':>9s} "
             f"{'first call s':>12s} {'execute s':>9s} {'ms/case':>8s} {'share':>6s}"]
    for name, a in sorted(s["adapters"].items(), key=lambda kv: -kv[1]["adapter_s"]):
        share = a["adapter_s"] / s["framework_s"] if s["framework_s"] else 0
        lines.append(f"{name:30s} {int(a['cases']):6d} {a['adapter_s']:11.1f} {int(a['compiles']):8d} "
                     f"{a['compile_s']:9.1f} {a['first_call_s']:12.1f} {a['execute_s']:9.1f} {a['per_case_ms']:8.1f} "
                     f"{share:6.1%}")
    su = s["suite"]
    lines += ["", "suite's own work (process-seconds):",
              f"  inputs {su.get('inputs_s', 0):.1f} s, reference {su.get('reference_s', 0):.1f} s, "
              f"comparison {su.get('compare_s', 0):.1f} s",
              f"  start-up, imports, collection, results and report (remainder): {su['startup_collection_io_s']:.1f} s",
              f"  overhead / framework time: {s['overhead_share_of_framework']:.1%} measured per case, "
              f"{s['overhead_incl_startup_share']:.1%} including the remainder"]
    return "\n".join(lines)


def markdown(s: dict) -> str:
    """The per-adapter table as Markdown (README "Speed"), heaviest first."""
    rows = ["| adapter | cases | framework s | compilations | compile s | first call s | ms per case |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for name, a in sorted(s["adapters"].items(), key=lambda kv: -kv[1]["adapter_s"]):
        rows.append(f"| `{name}` | {int(a['cases'])} | {a['adapter_s']:.1f} | {int(a['compiles'])} | "
                    f"{a['compile_s']:.1f} | {a['first_call_s']:.1f} | {a['per_case_ms']:.1f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2, help="pytest-xdist workers (0: one process)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "latest.json"))
    ap.add_argument("--keep", help="keep the run's results folder here (e.g. to publish it)")
    ap.add_argument("--costs", action="store_true", help="write adapters/costs.json from this run")
    ap.add_argument("--show", metavar="RECORD", help="print a saved record's table instead of running")
    ap.add_argument("--markdown", action="store_true", help="with --show: the per-adapter table as Markdown")
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args(argv)
    if args.show:
        s = json.loads(Path(args.show).read_text())
        print(markdown(s) if args.markdown else table(s))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(Path(args.keep or scratch) / "run")
        cmd = [sys.executable, "-m", "pytest", "conformance/", "-q", "-p", "no:randomly", "--results-dir", tmp,
               "--no-report", *(["-n", str(args.n), "--dist", "loadgroup"] if args.n else []), *args.pytest_args]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        tail = [ln for ln in proc.stdout.splitlines() if " passed" in ln or " failed" in ln][-1:]
        if proc.returncode not in (0, 1):
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        t1 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bn_conformance.reports", "build", tmp], cwd=ROOT, capture_output=True)
        report_s = time.perf_counter() - t1
        records = load(Path(tmp))
    s = summarise(records, wall, max(args.n, 1)) | {"report_s": report_s}
    if args.costs:
        costs = {k: round(v["adapter_s"], 1) for k, v in s["adapters"].items()}
        (ROOT / "adapters" / "costs.json").write_text(json.dumps(dict(sorted(costs.items())), indent=1) + "\n")
    s |= {"command": " ".join("RESULTS" if c == tmp else c for c in cmd[1:]), "pytest_summary": tail[0].strip("= ") if tail else "",
          "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.machine(),
          "cpus": os.cpu_count(), "python": platform.python_version()}
    print(table(s))
    print(f"\npytest: {s['pytest_summary']}")
    Path(args.out).write_text(json.dumps(s, indent=2) + "\n")
    print(f"record: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
