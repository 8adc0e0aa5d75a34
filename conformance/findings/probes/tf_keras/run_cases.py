"""Run cases on one adapter with the current suite code (no findings attributed), print every
non-passing check, and optionally judge the run against a findings file.

usage:
  python run_cases.py ADAPTER [--findings F.toml] [--out results.jsonl] [--re REGEX]
                      [--baseline RESULTS.jsonl] [CASE_ID ...]
    --baseline   take the case ids that a suite run (its results.jsonl) evaluated for ADAPTER (non-skipped)
    --re REGEX   keep only baseline case ids matching REGEX (explicit ids always run)
Environment (XLA_FLAGS, ONEDNN_MAX_CPU_ISA, OMP_NUM_THREADS ...) is inherited: set it to
measure machine sensitivity. Keras 3 adapters start their own worker process.
"""
import argparse, json, math, re, sys, time
from pathlib import Path

from bn_conformance.case import parse
from bn_conformance.evaluate import evaluate
from bn_conformance.findings import load_file, facts
from bn_conformance.adapters.loading import build
from bn_conformance.adapters.registry import BY_NAME

FAILING = {"fail", "raised", "accepted", "bad-output", "error", "timeout", "crash"}


def main():

    ap = argparse.ArgumentParser()
    ap.add_argument("adapter")
    ap.add_argument("cases", nargs="*")
    ap.add_argument("--findings")
    ap.add_argument("--out")
    ap.add_argument("--re")
    ap.add_argument("--baseline", metavar="RESULTS_JSONL", help="results.jsonl of a suite run")
    ap.add_argument("--baseline-from", help="take the baseline ids of this adapter instead (an opt-in adapter has none)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_intermixed_args()

    ids = []
    if a.baseline:
        for line in open(a.baseline):
            r = json.loads(line)
            if r.get("type") == "case" and r["adapter"] == (a.baseline_from or a.adapter) and r["verdict"] != "skip":
                ids.append(r["case_id"])
    if a.re:
        ids = [i for i in ids if re.search(a.re, i)]
    ids = list(dict.fromkeys(ids + list(a.cases)))   # --re filters the baseline ids only

    findings = load_file(Path(a.findings)) if a.findings else []
    adapter = build(BY_NAME[a.adapter])
    out = open(a.out, "w") if a.out else None
    unattributed, stats = [], {f.id: [0, 0] for f in findings}
    t0 = time.time()
    for cid in ids:
        case = parse(cid)
        res = evaluate(adapter, "cpu", case, attribute_findings=False)
        bad = [c for c in res.checks if c.verdict in FAILING]
        ver = res.version
        if out:
            out.write(json.dumps({"case_id": cid, "verdict": res.verdict,
                                  "checks": [{"name": c.name, "verdict": c.verdict, "ratio": c.ratio,
                                              "detail": c.detail} for c in res.checks]}, default=repr) + "\n")
        if res.verdict == "skip":
            continue
        applicable = [f for f in findings if f.applies(a.adapter, ver, "cpu") and f.covers(case, a.adapter, "cpu")]
        for f in applicable:
            stats[f.id][0] += 1
        trig = set()
        for c in bad:
            who = [f for f in applicable if f.names(c.name) and f.envelope.fits(c)]
            for f in who[:1]:
                trig.add(f.id)
            if not a.quiet or not who:
                print(f"{cid}\t{c.name}\t{c.verdict}\tratio={c.ratio}\t{'->' + who[0].id if who else 'UNATTRIBUTED'}\t{c.detail[:110]}")
            if findings and not who:
                unattributed.append((cid, c.name, c.ratio))
        for t in trig:
            stats[t][1] += 1
    print(f"# {len(ids)} cases in {time.time() - t0:.0f}s on {a.adapter}", file=sys.stderr)
    if findings:
        for fid, (m, t) in stats.items():
            if m:
                print(f"# finding {fid}: matched {m} cases, triggered on {t}", file=sys.stderr)
        print(f"# unattributed failing checks: {len(unattributed)}", file=sys.stderr)


if __name__ == "__main__":
    main()
