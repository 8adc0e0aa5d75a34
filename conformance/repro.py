"""Reproduce one case outside pytest.

  python -m bn_conformance.repro CASE_ID                  describe the case and its inputs
  python -m bn_conformance.repro CASE_ID --save out.npz   write every input array to a file
  python -m bn_conformance.repro CASE_ID --adapter NAME [--device cpu]
                                                       run one adapter and print every check
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from .case import BadDescriptor, parse
from .inputs import DISTRIBUTIONS, make_problem


def summary(case) -> str:
    pb = make_problem(case)
    x = pb.x.astype(np.float64)
    ax = case.channel_axis + 1
    per_c = np.moveaxis(x, ax, 0).reshape(case.channels, -1)
    finite = np.isfinite(per_c)
    lines = [f"case      {case.id}", f"mode      {case.mode}, {case.steps} step(s){' on one fixed batch' if case.fixed else ''}",
             f"input     {case.dtype} {case.layout} {case.shape} (channel axis {case.channel_axis}, n = {case.n} per channel)",
             f"dist      {case.dist}: {DISTRIBUTIONS[case.dist]}",
             f"momentum  {'cumulative' if case.momentum is None else case.momentum} (weight of the new batch statistic); eps {case.eps!r}",
             f"affine    {case.affine}; track running stats {case.track}; seed {case.seed}",
             f"x         min {np.nanmin(x) if x.size else 'n/a'} max {np.nanmax(x) if x.size else 'n/a'}, "
             f"{int((~np.isfinite(x)).sum())} non-finite"]
    if per_c.size:
        with np.errstate(all="ignore"):
            means = np.array([r[f].mean() if f.any() else np.nan for r, f in zip(per_c, finite)])
            stds = np.array([r[f].std() if f.any() else np.nan for r, f in zip(per_c, finite)])
        lines.append(f"channels  mean in [{np.nanmin(means):.6g}, {np.nanmax(means):.6g}], std in [{np.nanmin(stds):.6g}, {np.nanmax(stds):.6g}]")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bn_conformance.repro", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case")
    ap.add_argument("--save")
    ap.add_argument("--adapter")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    try:
        case = parse(args.case)
    except BadDescriptor as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(case))
    if args.save:
        pb = make_problem(case)
        arrays = {k: v for k, v in vars(pb).items() if isinstance(v, np.ndarray)}
        np.savez(args.save, **arrays)
        print(f"inputs written to {args.save}: {', '.join(sorted(arrays))}")
    if args.adapter:
        from bn_conformance.adapters.loading import AdapterLoadError, from_spec, installed

        from .evaluate import evaluate
        try:
            found = from_spec(args.adapter) if ":" in args.adapter else [installed()[0][args.adapter]]
        except (KeyError, AdapterLoadError) as exc:
            print(f"error: adapter {args.adapter!r}: {exc}", file=sys.stderr)
            return 2
        res = evaluate(found[0], args.device, case)
        print(f"\n{res.adapter}@{res.device} {res.framework} {res.version}: {res.verdict}"
              + (f" ({res.skip_reason})" if res.skip_reason else ""))
        for c in res.checks:
            print(f"  {c.name:14s} {c.verdict:8s} ratio={c.ratio} max_abs={c.max_abs} max_ulp={c.max_ulp} {c.detail}")
        return 0 if res.verdict in ("pass", "refused", "skip", "xfail") else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
