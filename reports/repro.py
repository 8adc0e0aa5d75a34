"""Input summaries and stand-alone reproducer snippets for failing cases.

Snippets come from a small table keyed by adapter-name prefix (longest prefix wins), with
a generic fallback. A snippet needs only its framework (and NumPy for large inputs): the
case's inputs are embedded as literal lists when small, otherwise saved once to an .npz
file by ``python -m bn_conformance.repro CASE_ID --save FILE.npz`` and read back by the snippet.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from bn_conformance.case import BadDescriptor, Case, parse
from bn_conformance.inputs import make_problem

LITERAL_MAX = 256          # embed x (and dy) as literal lists up to this many values each


@lru_cache(maxsize=256)
def problem(case_id: str):
    case = parse(case_id)
    return case, make_problem(case)


def input_summary(case_id: str) -> dict:
    """Shape, dtype, per-channel mean/std ranges, min/max, non-finite count of x (all steps)."""
    try:
        case, pb = problem(case_id)
    except (BadDescriptor, ValueError, KeyError, IndexError) as exc:
        return {"error": f"cannot regenerate the inputs: {exc}"}
    x = np.asarray(pb.x, np.float64)
    ax = case.channel_axis + 1
    xc = np.moveaxis(x, ax, 0).reshape(case.channels, -1)
    fin = np.isfinite(xc)
    with np.errstate(all="ignore"):
        cnt = fin.sum(axis=1)
        xs = np.where(fin, xc, 0.0)
        mean = xs.sum(axis=1) / np.maximum(cnt, 1)
        std = np.sqrt((np.where(fin, xc - mean[:, None], 0.0) ** 2).sum(axis=1) / np.maximum(cnt, 1))
    finite = x[np.isfinite(x)]
    return {"shape": "x".join(map(str, case.shape)), "steps": case.steps, "dtype": case.dtype,
            "layout": case.layout, "channels": case.channels, "n": case.n, "dist": case.dist,
            "mean_range": (float(mean.min()), float(mean.max())) if mean.size else None,
            "std_range": (float(std.min()), float(std.max())) if std.size else None,
            "min": float(finite.min()) if finite.size else None, "max": float(finite.max()) if finite.size else None,
            "nonfinite": int(x.size - finite.size), "size": int(x.size),
            "momentum": "cumulative" if case.momentum is None else case.momentum, "eps": case.eps,
            "affine": case.affine, "track": case.track, "mode": case.mode}


def _lit(a) -> str:
    vals = []
    for v in np.asarray(a, np.float64).reshape(-1):
        v = float(v)
        vals.append("nan" if math.isnan(v) else ("inf" if v == math.inf else ("-inf" if v == -math.inf else repr(v))))
    return "[" + ", ".join(vals) + "]"


def _inputs_block(case: Case, pb, case_id: str) -> tuple[str, bool]:
    """Python source defining x, dy, gamma, beta, rm, rv as NumPy-free lists or via an npz file."""
    shape = (case.steps,) + tuple(case.shape)
    rm = None if pb.running_mean is None else _lit(pb.running_mean)
    rv = None if pb.running_var is None else _lit(pb.running_var)
    if pb.x.size <= LITERAL_MAX:
        lines = ["nan, inf = float('nan'), float('inf')",
                 f"shape = {shape}  # (steps, *input shape)",
                 f"x = {_lit(pb.x)}", f"dy = {_lit(pb.dy)}",
                 f"gamma = {_lit(pb.gamma)}", f"beta = {_lit(pb.beta)}",
                 f"rm = {rm}", f"rv = {rv}"]
        return "\n".join(lines), False
    lines = [f"# {pb.x.size} input values: too many to embed. Write them once with the suite:",
             f"#   python -m bn_conformance.repro {case_id} --save {case_id}.npz",
             "# then this snippet needs only the framework and NumPy:",
             "import numpy as np",
             f"_d = np.load('{case_id}.npz')",
             f"shape = {shape}  # (steps, *input shape)",
             "x, dy = _d['x'].astype('float64').ravel().tolist(), _d['dy'].astype('float64').ravel().tolist()",
             "gamma, beta = _d['gamma'].tolist(), _d['beta'].tolist()",
             "rm = _d['running_mean'].tolist() if 'running_mean' in _d.files else None",
             "rv = _d['running_var'].tolist() if 'running_var' in _d.files else None"]
    return "\n".join(lines), True


def _torch(adapter: str, case: Case, pb, row: dict, check: dict | None, device: str) -> str:
    functional = adapter.startswith("torch.functional")
    channels_last = adapter.startswith("torch.nn.channels_last")
    tdt = {"float16": "torch.float16", "bfloat16": "torch.bfloat16", "float32": "torch.float32", "float64": "torch.float64"}[case.dtype]
    pdt = "torch.float32" if case.dtype in ("float16", "bfloat16") else tdt
    block, _ = _inputs_block(case, pb, case.id)
    mom = "None" if case.momentum is None else repr(case.momentum)
    L = [f"# {row['case_id']}", f"# adapter {adapter} on {device}, {row.get('framework', 'torch')} {row.get('version', '?')}",
         "import torch", "", block, "",
         f"device, dtype, pdtype = {device!r}, {tdt}, {pdt}",
         "X = torch.tensor(x, dtype=torch.float64).reshape(shape).to(dtype)",
         "DY = torch.tensor(dy, dtype=torch.float64).reshape(shape).to(dtype)",
         "def t(a, k):  # step k as the adapter feeds it",
         "    v = a[k].to(device)"]
    if channels_last:
        L.append(f"    return v.contiguous(memory_format=torch.{'channels_last' if len(case.shape) == 4 else 'channels_last_3d'})")
    else:
        L.append("    return v")
    L.append("out = {}")
    L.append("def rec(name, v): out.setdefault(name, []).append(v.detach().double().cpu())")
    if functional:
        L += ["g = torch.tensor(gamma, dtype=pdtype, device=device, requires_grad=True)" if case.affine else "g = None",
              "b = torch.tensor(beta, dtype=pdtype, device=device, requires_grad=True)" if case.affine else "b = None"]
        if case.track:
            L += ["rmean = torch.tensor(rm if rm is not None else [0.0] * shape[2], dtype=pdtype, device=device)",
                  "rvar = torch.tensor(rv if rv is not None else [1.0] * shape[2], dtype=pdtype, device=device)"]
        else:
            L += ["rmean = rvar = None"]
        training = case.mode == "train" or not case.track
        steps = case.steps if case.mode == "train" else 1
        L += [f"for k in range({steps}):",
              "    xk = t(X, k).requires_grad_(True)",
              f"    y = torch.nn.functional.batch_norm(xk, rmean, rvar, g, b, training={training}, momentum={mom}, eps={case.eps!r})",
              "    y.backward(t(DY, k))",
              "    rec('y', y); rec('dx', xk.grad)"]
        if case.affine:
            L += ["    rec('dgamma', g.grad); rec('dbeta', b.grad); g.grad = b.grad = None"]
        if case.track:
            L += ["    rec('running_mean', rmean); rec('running_var', rvar)"]
        if case.mode == "train":
            L += ["with torch.no_grad():",
                  f"    y_eval = torch.nn.functional.batch_norm(t(X, {case.steps - 1}), rmean, rvar, g, b, "
                  f"training=rmean is None, momentum=0.0, eps={case.eps!r}).double().cpu()"]
    else:
        cls = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}[len(case.shape)]
        L += [f"m = torch.nn.{cls}({case.channels}, eps={case.eps!r}, momentum={mom}, affine={case.affine}, "
              f"track_running_stats={case.track}, device=device, dtype=pdtype)"]
        if case.affine:
            L += ["with torch.no_grad():", "    m.weight.copy_(torch.tensor(gamma)); m.bias.copy_(torch.tensor(beta))"]
        if case.track and case.mode != "train":
            L += ["with torch.no_grad():", "    m.running_mean.copy_(torch.tensor(rm)); m.running_var.copy_(torch.tensor(rv))"]
        body = ["    xk = t(X, k).requires_grad_(True)", "    y = m(xk)", "    y.backward(t(DY, k))",
                "    rec('y', y); rec('dx', xk.grad)"]
        if case.affine and case.mode != "frozen":
            body += ["    rec('dgamma', m.weight.grad); rec('dbeta', m.bias.grad); m.weight.grad = m.bias.grad = None"]
        if case.track:
            body += ["    rec('running_mean', m.running_mean); rec('running_var', m.running_var)"]
        if case.mode == "train":
            L += ["m.train()", f"for k in range({case.steps}):"] + body
            L += ["m.eval()", "with torch.no_grad():", f"    y_eval = m(t(X, {case.steps - 1})).double().cpu()"]
        elif case.mode == "infer":
            L += ["m.eval()", "for k in range(1):"] + body
        else:
            L += ["for p in m.parameters():", "    p.requires_grad_(False)", "m.train()", f"for k in range({case.steps}):"] + body
    L += ["out = {k: torch.stack(v) for k, v in out.items()}"]
    if case.mode == "train":
        L += ["out['y_eval'] = y_eval"]
    L += _worst_lines(check)
    return "\n".join(L)


def _worst_lines(check: dict | None) -> list[str]:
    if not check:
        return ["print({k: tuple(v.shape) for k, v in out.items()})"]
    name, idx = str(check.get("name")), check.get("worst_index")
    exp, tol = check.get("expected"), check.get("tolerance")
    if name in ("y", "dx", "dgamma", "dbeta", "running_mean", "running_var", "y_eval", "batch_mean", "batch_var") \
            and isinstance(idx, list) and all(isinstance(i, int) for i in idx):
        return [f"# check {name!r}: worst element {idx}; the suite's reference there is {exp!r}, "
                f"tolerance {tol!r}, the suite saw {check.get('actual')!r}",
                f"got = out[{name!r}][{tuple(idx)!r}].item()",
                f"print({name!r}, {idx!r}, 'framework:', repr(got), 'reference:', {exp!r}, "
                f"'|error|/tolerance:', abs(got - {exp!r}) / {tol!r} if {tol!r} else None)"]
    return [f"# check {name!r} is a property of the outputs ({check.get('detail', '')!s:.200})",
            "print({k: tuple(v.shape) for k, v in out.items()})"]


def _generic(adapter: str, case: Case, pb, row: dict, check: dict | None, device: str) -> str:
    block, _ = _inputs_block(case, pb, case.id)
    return "\n".join([
        f"# {row['case_id']}", f"# adapter {adapter!r} on {device}: no snippet template for this framework;",
        "# the inputs and settings below are what the adapter was given (see adapters/protocol.py for the scenario).",
        block, "",
        f"mode, dtype, layout = {case.mode!r}, {case.dtype!r}, {case.layout!r}",
        f"momentum_new_weight, eps, steps = {case.momentum!r}, {case.eps!r}, {case.steps}",
        f"affine, track_running_stats = {case.affine}, {case.track}",
        f"# worst check: {check.get('name') if check else None!r} at {check.get('worst_index') if check else None!r}: "
        f"reference {check.get('expected') if check else None!r}, tolerance {check.get('tolerance') if check else None!r}"])


SNIPPETS = {          # adapter-name prefix -> generator(adapter, case, problem, record, worst check, device)
    "torch.": _torch,
}


def snippet(row: dict, check: dict | None) -> tuple[str, str]:
    """(language label, source) of a stand-alone reproducer for a case record."""
    adapter, device = str(row.get("adapter")), str(row.get("device"))
    try:
        case, pb = problem(str(row.get("case_id")))
    except (BadDescriptor, ValueError, KeyError, IndexError) as exc:
        return "text", f"no reproducer: {exc}"
    prefixes = sorted((p for p in SNIPPETS if adapter.startswith(p)), key=len, reverse=True)
    gen = SNIPPETS[prefixes[0]] if prefixes else _generic
    try:
        return "python", gen(adapter, case, pb, row, check, device)
    except Exception as exc:  # noqa: BLE001 -- a snippet bug must not stop the report
        return "text", f"no reproducer ({type(exc).__name__}: {exc}); regenerate inputs with conformance.inputs.make_problem"
