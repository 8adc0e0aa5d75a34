"""Table of ratios per (adapter, case, check) across the sweep_isa.sh configurations (only checks
whose ratio exceeds 0.3 in some configuration, or that fail somewhere)."""
import re
from collections import defaultdict
from pathlib import Path

rows = defaultdict(dict)
cfgs = []
cfg = None
ad = cid = None
for line in open(Path(__file__).with_name("sweep_isa.out")):
    m = re.match(r"### CONFIG cap=(\S+) threads=(\S+)", line)
    if m:
        cfg = f"{m.group(1)}/t{m.group(2)}"
        cfgs.append(cfg)
        continue
    if re.match(r"^(torch\S*) (\S+): ", line):
        ad, cid = line.split()[:2]
        cid = cid.rstrip(":")
        continue
    p = line.split()
    if ad and len(p) >= 3 and ("ratio=" in line):
        if p[0] == "!!":
            p = p[1:]
        name, verdict, ratio = p[0], p[1], p[2].partition("=")[2]
        rows[(ad, cid, name)][cfg] = (verdict, ratio)
print(f"{'adapter':18s} {'case':58s} {'check':15s} " + " ".join(f"{c:>12s}" for c in cfgs))
for (ad, cid, name), d in rows.items():
    vals = []
    show = False
    for c in cfgs:
        v, r = d.get(c, ("-", "-"))
        try:
            rf = float(r)
            show |= rf > 0.3
        except ValueError:
            rf = None
        show |= v not in ("pass", "-")
        vals.append(("*" if v not in ("pass", "-") else " ") + (f"{rf:.3g}" if rf is not None else r))
    if show:
        print(f"{ad:18s} {cid:58s} {name:15s} " + " ".join(f"{x:>12s}" for x in vals))
