"""Reproduce one case outside pytest.

  python -m bn_conformance.repro CASE_ID                  describe the case and its inputs
  python -m bn_conformance.repro CASE_ID --save out.npz   write every input array to a file
  python -m bn_conformance.repro CASE_ID --adapter SPEC [--device cpu]
                                                       run adapters (name, glob or user spec) and
                                                       print every check; exit 1 if one fails
"""
from __future__ import annotations

import argparse
import shlex
import sys

import numpy as np

from .case import EXAMPLE, BadDescriptor, parse
from .distributions import DISTRIBUTIONS
from .inputs import make_problem


def summary(case) -> str:
    pb = make_problem(case)
    x = pb.x.astype(np.float64)
    ax = case.channel_axis + 1
    per_c = np.moveaxis(x, ax, 0).reshape(case.channels, -1)
    finite = np.isfinite(per_c)
    lines = [f"case      {case.id}", f"mode      {case.mode}, {case.steps} step(s){' on one fixed batch' if case.fixed else ''}",
             f"input     {case.dtype} {case.layout} {case.shape} (channel axis {case.channel_axis}, n = {case.n} per channel)",
             f"dist      {case.dist}: {DISTRIBUTIONS[case.dist].description}",
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


def input_summary(case, pb=None) -> dict:
    """Shape, dtype, per-channel mean/std ranges, min/max and non-finite count of x over all
    steps: what the report shows beside a failure (stored in the case record at run time,
    so a report needs no input generator)."""
    pb = pb if pb is not None else make_problem(case)
    x = np.asarray(pb.x, np.float64)
    xc = np.moveaxis(x, case.channel_axis + 1, 0).reshape(case.channels, -1)
    fin = np.isfinite(xc)
    with np.errstate(all="ignore"):
        cnt = fin.sum(axis=1)
        mean = np.where(fin, xc, 0.0).sum(axis=1) / np.maximum(cnt, 1)
        std = np.sqrt((np.where(fin, xc - mean[:, None], 0.0) ** 2).sum(axis=1) / np.maximum(cnt, 1))
    finite = x[np.isfinite(x)]
    return {"shape": "x".join(map(str, case.shape)), "steps": case.steps, "dtype": case.dtype,
            "layout": case.layout, "channels": case.channels, "n": case.n, "dist": case.dist,
            "dist_text": DISTRIBUTIONS[case.dist].description,
            "mean_range": [float(mean.min()), float(mean.max())] if mean.size else None,
            "std_range": [float(std.min()), float(std.max())] if std.size else None,
            "min": float(finite.min()) if finite.size else None, "max": float(finite.max()) if finite.size else None,
            "nonfinite": int(x.size - finite.size), "size": int(x.size),
            "momentum": "cumulative" if case.momentum is None else case.momentum, "eps": case.eps,
            "affine": case.affine, "track": case.track, "mode": case.mode}


def commands(case_id: str, adapter: str, device: str) -> str:
    """Shell lines that rerun one case: under pytest, and stand-alone with every check printed
    and the inputs saved. ``adapter`` is what selects it (a name, or a user spec with
    #name); every part is shell-quoted, so no text from an adapter can become a command."""
    q = shlex.quote          # --opt=VALUE: a value that begins with "-" stays a value
    return (f"pytest conformance/ --case={q(case_id)} --adapter={q(adapter)} --device={q(device)}\n"
            f"python -m bn_conformance.repro {q(case_id)} --adapter={q(adapter)} --device={q(device)} "
            f"--save={q(case_id + '.npz')}")


def targets_for(adapter: str, device: str | None, timeout_s: float = 300.0):
    """(selection, targets) for a command-line tool: the same selection rules and usage errors
    as the suite (a name, a glob, or a user spec run in a worker process)."""
    from .selection import select
    sel = select([adapter], [device] if device else [], all_adapters=True, timeout_s=timeout_s)
    if sel.load_errors:
        from .selection import SelectionError
        raise SelectionError("; ".join(f"{k}: {v}" for k, v in sel.load_errors.items()))
    return sel, sel.targets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bn_conformance.repro", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", help="a case descriptor, e.g. " + EXAMPLE)
    ap.add_argument("--save", metavar="FILE.npz", help="write every input array of the case to this file")
    ap.add_argument("--adapter", metavar="SPEC", help="adapter name, glob, or MODULE:NAME / FILE.py:NAME[#adapter]")
    ap.add_argument("--device", default=None, help="device (default: every device the adapter offers here)")
    args = ap.parse_args(argv)
    try:
        case = parse(args.case)
    except BadDescriptor as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .selection import SelectionError
    sel = None
    if args.adapter:
        try:
            sel, targets = targets_for(args.adapter, args.device)
        except SelectionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(summary(case))
    if args.save:
        pb = make_problem(case)
        arrays = {k: v for k, v in vars(pb).items() if isinstance(v, np.ndarray)}
        try:
            np.savez(args.save, **arrays)
        except OSError as exc:
            print(f"error: cannot write {args.save}: {exc}", file=sys.stderr)
            return 2
        print(f"inputs written to {args.save}: {', '.join(sorted(arrays))}")
    if sel is None:
        return 0
    from .evaluate import evaluate
    worst = 0
    for t in targets:
        res = evaluate(sel.adapters[t.adapter], t.device, case)
        print(f"\n{res.adapter}@{res.device} {res.framework} {res.version}: {res.verdict}"
              + (f" ({res.skip_reason})" if res.skip_reason else ""))
        for c in res.checks:
            known = f" [finding {c.finding}]" if c.finding else ""
            print(f"  {c.name:14s} {c.verdict:8s} ratio={c.ratio} max_abs={c.max_abs} max_ulp={c.max_ulp}"
                  f"{known} {c.detail}")
        worst = max(worst, 0 if res.verdict in ("pass", "refused", "skip", "xfail") else 1)
    return worst


if __name__ == "__main__":
    sys.exit(main())
