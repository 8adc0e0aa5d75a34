"""Evaluate cases on JAX adapters in one process, with NO finding attribution, and print
every check's verdict and ratio as JSON lines (one line per adapter x case).

usage: python evalcases.py --adapter flax.linen.jit [--adapter ...] --cases FILE|ID... [--out OUT.jsonl]
Run under XLA_FLAGS=--xla_cpu_max_isa=AVX2 (or AVX) to see instruction-set dependence.
"""
import argparse, json, os, sys, warnings
import numpy as np

warnings.simplefilter("ignore")
ap = argparse.ArgumentParser()
ap.add_argument("--adapter", action="append", required=True)
ap.add_argument("--cases", nargs="+", required=True)
ap.add_argument("--out")
a = ap.parse_args()
ids = []
for c in a.cases:
    if os.path.exists(c):
        ids += [l.split()[0] for l in open(c) if l.strip() and not l.startswith("#")]
    else:
        ids.append(c)

from bn_conformance.adapters.loading import _construct
from bn_conformance.adapters.registry import BY_NAME
from bn_conformance.case import parse
from bn_conformance.evaluate import evaluate

out = open(a.out, "a") if a.out else sys.stdout
for name in a.adapter:
    ad = _construct(BY_NAME[name])
    for cid in ids:
        with np.errstate(all="ignore"):
            res = evaluate(ad, "cpu", parse(cid), attribute_findings=False)
        rec = {"adapter": name, "case_id": cid, "verdict": res.verdict, "isa": os.environ.get("XLA_FLAGS", ""),
               "error": res.error and str(res.error)[:300],
               "checks": {c.name: [c.verdict, c.ratio if not isinstance(c.ratio, float) or np.isfinite(c.ratio) else str(c.ratio),
                                   (c.detail or "")[:200]] for c in res.checks}}
        out.write(json.dumps(rec, default=str) + "\n")
        out.flush()
