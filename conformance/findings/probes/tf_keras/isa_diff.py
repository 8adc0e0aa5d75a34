"""Compare the per-check verdicts of one adapter's runs under several settings (isa/*.jsonl).
usage: python isa_diff.py isa/ADAPTER_TAG_   -> a table of (case, check) whose verdict or ratio class differs,
plus, per finding-relevant check, the ratio under each variant."""
import glob, json, sys
prefix = sys.argv[1]
runs = {}
for p in sorted(glob.glob(prefix + "*.jsonl")):
    v = p[len(prefix):-6]
    runs[v] = {}
    for line in open(p):
        r = json.loads(line)
        for c in r["checks"]:
            runs[v][(r["case_id"], c["name"])] = (c["verdict"], c["ratio"])
vs = list(runs)
keys = sorted(set().union(*[set(d) for d in runs.values()]))
print("case\tcheck\t" + "\t".join(vs))
def fmt(x):
    if x is None: return "-"
    v, r = x
    try:
        r = float(r)
        rs = "inf" if r == float("inf") else ("nan" if r != r else f"{r:.3g}")
    except (TypeError, ValueError):
        rs = str(r)
    return ("F " if v != "pass" else "  ") + rs
for k in keys:
    vals = [runs[v].get(k) for v in vs]
    verdicts = {x[0] if x else None for x in vals}
    if len(verdicts) > 1 or any(x and x[0] != "pass" for x in vals) and "--all" in sys.argv:
        print(f"{k[0]}\t{k[1]}\t" + "\t".join(fmt(x) for x in vals))
