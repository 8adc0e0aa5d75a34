"""Convention fingerprinting: infer an adapter's conventions from probe cases alone.

Each probe runs the adapter on a small case built for one question and reads the answer
off its outputs with plain float64 arithmetic (no declared convention is used):

  (every probe uses a shape of the curated grid, so jitted adapters reuse its compilations)
  reduction     train, nchw: which axes the statistics were taken over (every axis but the
                channel, the batch axis only, the spatial axes only, or all axes)
  layouts       which channel positions the adapter accepts (axis 1, axis -1)
  momentum      train K=4 with f = 0.1 from the framework's initial statistics: the weight
                w_t of the batch statistic at steps 2..4, solved from consecutive running
                means, w_t = (r_t - r_{t-1}) / (mu_t - r_{t-1}). Constant w = f: the API's
                momentum maps as declared; w = 1 - f: the mapping is inverted; w_t =
                f / (1 - (1-f)^t): zero-initialised debiased average
  init          the initial running mean and variance solved back from step 1
  estimator     train with f = 1: running_var / biased batch variance, 1 or n/(n-1)
  eps           inference with running_var = 0, running_mean = 0, gamma = 1, beta = 0:
                eps_eff = median((x / y)^2), probed with eps = 1e-8 and 1e-3 (a clamp shows
                as eps_eff > eps)
  inference     inference with supplied statistics: are they used, or the batch's?
  frozen        the framework's freeze in a training-mode call: batch or running
                statistics, and are running statistics updated?
  variance      train on float32 data offset by 1e4 times its spread: is the output within
                the stable-variance tolerance (two-pass or Welford) or not (one-pass-like)?
  one_value     train with one value per channel: raises, returns beta, or NaN

``fingerprint(adapter)`` returns {field: {"value", "evidence"}}; ``compare(fp, convention)``
lists the fields where the measurement contradicts the declared preset.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from bn_conformance.adapters.protocol import Problem
from bn_conformance.reference import preset

from .case import Case
from .compare import FAILING
from .inputs import make_problem


CRASHES = ("WorkerCrashed", "WorkerTimeout", "WorkerOversize", "WorkerError")


def _run(adapter, pb: Problem, device: str):
    """(outputs, None) or (None, why). A probe that crashes, hangs or answers garbage is not
    an answer about conventions: its ``why`` starts with "crashed" and the fingerprint fails."""
    from .evaluate import guarded
    from .outputs import BadOutput, validate
    why, fault = guarded(adapter.supports, pb, device)
    if fault is not None:
        return None, f"crashed in supports(): {fault.message}"
    if why:
        return None, f"unsupported: {why}"
    out, fault = guarded(adapter.run, pb, device)
    if fault is not None:
        kind = fault.message.split(":", 1)[0]
        if fault.verdict != "raised" or kind in CRASHES:
            return None, f"crashed ({fault.verdict}): {fault.message}"
        return None, f"raised {fault.message}"
    try:
        steps = pb.steps if pb.mode in ("train", "frozen") else 1
        return validate(out, pb.shape, steps, pb.channels), None
    except BadOutput as exc:
        return None, f"crashed (bad-output): {exc}"


def _channel_rows(x: np.ndarray, ax: int) -> np.ndarray:
    return np.moveaxis(x.astype(np.float64), ax, 0).reshape(x.shape[ax], -1)


def _unaffine(pb: Problem, y: np.ndarray) -> np.ndarray:
    """x_hat from an output: (y - beta) / gamma per channel. Probes use affine cases with the
    grid's shapes so that jitted adapters reuse the executables the grid compiled."""
    shape = [1] * y.ndim
    shape[pb.axis] = -1
    return (y - pb.beta.astype(np.float64).reshape(shape)) / pb.gamma.astype(np.float64).reshape(shape)


def _field(value, evidence):
    return {"value": value, "evidence": evidence}


def _normalise(x, axes, eps):
    m = x.mean(axis=axes, keepdims=True)
    v = ((x - m) ** 2).mean(axis=axes, keepdims=True)
    return (x - m) / np.sqrt(v + eps)


def probe_reduction(adapter, device):
    case = Case("train", "float64", "nchw", (2, 3, 4, 5), momentum=0.1)
    pb = make_problem(case)
    out, why = _run(adapter, pb, device)
    if out is None:
        return _field("not measured", why)
    x, y = pb.x[0].astype(np.float64), _unaffine(pb, out["y"][0])
    candidates = {"all axes but the channel": (0, 2, 3), "batch axis only": (0,),
                  "spatial axes only (instance norm)": (2, 3), "all axes": (0, 1, 2, 3)}
    errs = {k: float(np.max(np.abs(_normalise(x, a, pb.eps) - y))) for k, a in candidates.items()}
    best = min(errs, key=errs.get)
    return _field(best, f"{case.id}: max |y - candidate| = " + ", ".join(f"{k}: {v:.2g}" for k, v in errs.items()))


def probe_layouts(adapter, device):
    ok = []
    for lay, shp in (("nchw", (2, 3, 4, 5)), ("nhwc", (2, 4, 5, 3))):
        why = adapter.supports(make_problem(Case("train", "float32", lay, shp)), device)
        ok.append(f"{'1' if lay == 'nchw' else '-1'}" if not why else None)
    accepted = [a for a in ok if a]
    return _field(", ".join(accepted) or "none", "supports() on nchw and nhwc training cases")


def _means(pb):
    return np.stack([_channel_rows(x, pb.axis).mean(axis=1) for x in pb.x])


def _vars(pb):
    return np.stack([_channel_rows(x, pb.axis).var(axis=1) for x in pb.x])


def probe_momentum(adapter, device, f=0.1):
    case = Case("train", "float64", "nc", (16, 5), momentum=f, steps=4)
    pb = make_problem(case)
    out, why = _run(adapter, pb, device)
    if out is None or "running_mean" not in out:
        return {"momentum": _field("not measured", why or "no running statistics returned"),
                "init": _field("not measured", why or "no running statistics returned")}
    r, mu = out["running_mean"], _means(pb)
    w = [(r[t] - r[t - 1]) / (mu[t] - r[t - 1]) for t in range(1, 4)]
    w = [float(np.median(v)) for v in w]
    ev = f"{case.id}: weights of the batch mean at steps 2-4: " + ", ".join(f"{v:.6g}" for v in w)
    deb = [f / (1 - (1 - f) ** t) for t in (2, 3, 4)]
    if np.allclose(w, f, rtol=1e-3):
        form, w1 = "new-batch weight f, as passed (ema)", f
    elif np.allclose(w, 1 - f, rtol=1e-3):
        form, w1 = "inverted: the batch statistic gets 1 - f (ema)", 1 - f
    elif np.allclose(w, deb, rtol=1e-3):
        form, w1 = "zero-initialised debiased average (w_t = f / (1 - (1-f)^t))", 1.0
    elif np.allclose(w, [1 / 2, 1 / 3, 1 / 4], rtol=1e-3):
        form, w1 = "cumulative average (w_t = 1/t)", 1.0
    elif np.allclose(w, 0.0, atol=1e-9):
        form, w1 = "not updated", 0.0
    else:
        form, w1 = "unrecognised", None
    res = {"momentum": _field(form, ev)}
    if w1 is None or w1 in (0.0, 1.0):
        res["init"] = _field("not observable" if w1 == 1.0 else "not measured",
                             "the first update replaces the initial value" if w1 == 1.0 else ev)
    else:
        # solved back through one update, m0 carries the framework's rounding amplified by
        # 1/(1-w): values within 1e-6 of the data's scale of an integer are that integer
        scale = max(1.0, float(np.max(np.abs(mu))))
        m0 = float(np.median((r[0] - w1 * mu[0]) / (1 - w1)))
        m0 = float(round(m0)) if abs(m0 - round(m0)) <= 1e-6 * scale else m0
        res["init"] = _field(f"mean {m0:.6g}", f"solved from step 1 with w = {w1:g}")
        if "running_var" in out:
            rv, var = out["running_var"], _vars(pb)
            n = case.n
            for name, fed in (("biased", var[0]), ("unbiased", var[0] * n / (n - 1))):
                v0 = (rv[0] - w1 * fed) / (1 - w1)
                if np.allclose(v0, np.round(v0), atol=1e-6 * scale):
                    res["init"] = _field(f"mean {m0:.6g}, var {float(np.median(np.round(v0))):.6g}",
                                         f"solved from step 1 with w = {w1:g} and the {name} variance")
                    break
    return res


def probe_estimator(adapter, device):
    case = Case("train", "float64", "nc", (16, 5), momentum=1.0)
    pb = make_problem(case)
    out, why = _run(adapter, pb, device)
    if out is None or "running_var" not in out:
        return _field("not measured", why or "no running statistics returned")
    ratio = float(np.median(out["running_var"][0] / _vars(pb)[0]))
    n = case.n
    label = "biased" if abs(ratio - 1) < 1e-6 else "unbiased" if abs(ratio - n / (n - 1)) < 1e-6 else f"other (x{ratio:.6g})"
    return _field(label, f"{case.id}: running_var / biased batch variance = {ratio:.8g} (n/(n-1) = {n / (n - 1):.8g})")


def _eps_probe(adapter, device, eps):
    case = Case("infer", "float32", "nc", (16, 5), eps=eps)
    pb = make_problem(case)
    pb = dataclasses.replace(pb, running_mean=np.zeros(5, np.float32), running_var=np.zeros(5, np.float32))
    out, why = _run(adapter, pb, device)
    if out is None:
        return None, why
    x, y = pb.x[0].astype(np.float64), _unaffine(pb, out["y"][0])
    keep = np.abs(y) > 1e-3
    return float(np.median((x[keep] / y[keep]) ** 2)), case.id


def probe_eps(adapter, device):
    got = []
    for eps in (1e-8, 1e-3):
        eff, ev = _eps_probe(adapter, device, eps)
        if eff is None:
            return _field("not measured", ev)
        got.append((eps, eff))
    ev = "; ".join(f"eps {e:g} -> effective {v:.4g}" for e, v in got)
    if all(abs(v / e - 1) < 1e-3 for e, v in got):
        return _field("as given", ev)
    if abs(got[1][1] / got[1][0] - 1) < 1e-3 and got[0][1] > got[0][0] * 1.01:
        return _field(f"clamped to at least {got[0][1]:.4g}", ev)
    return _field("other", ev)


def probe_inference(adapter, device):
    case = Case("infer", "float64", "nc", (16, 5))
    pb = make_problem(case)
    out, why = _run(adapter, pb, device)
    if out is None:
        return _field("not measured", why)
    x, y = pb.x[0], _unaffine(pb, out["y"][0])
    supplied = (x - pb.running_mean) / np.sqrt(pb.running_var + pb.eps)
    batch = _normalise(x, (0,), pb.eps)
    e_s, e_b = float(np.max(np.abs(y - supplied))), float(np.max(np.abs(y - batch)))
    label = "uses the supplied statistics" if e_s < e_b else "uses batch statistics"
    return _field(label, f"{case.id}: max |y - supplied-stat output| = {e_s:.2g}, |y - batch-stat output| = {e_b:.2g}")


def probe_frozen(adapter, device):
    case = Case("frozen", "float64", "nc", (16, 5), steps=2)
    pb = make_problem(case)
    out, why = _run(adapter, pb, device)
    if out is None:
        return _field("not measured", why)
    x, y = pb.x[0], _unaffine(pb, out["y"][0])
    e_s = float(np.max(np.abs(y - (x - pb.running_mean) / np.sqrt(pb.running_var + pb.eps))))
    e_b = float(np.max(np.abs(y - _normalise(x, (0,), pb.eps))))
    updated = "running_mean" in out and not np.allclose(out["running_mean"][0], pb.running_mean)
    if e_s < e_b and not updated:
        label = "inference"
    elif e_b < e_s and updated:
        label = "train"
    else:
        label = f"other ({'running' if e_s < e_b else 'batch'} statistics, running stats {'updated' if updated else 'kept'})"
    return _field(label, f"{case.id}: |y - inference| = {e_s:.2g}, |y - training| = {e_b:.2g}, "
                         f"running statistics {'updated' if updated else 'unchanged'}")


def probe_variance(adapter, device):
    from .evaluate import evaluate
    # without running statistics where the adapter allows it: the training output alone, so that a
    # one-pass variance is not masked by what the inference after it does with a negative average
    for track in (False, True):
        case = Case("train", "float32", "nc", (16, 5), "offset1e4", track=track)
        if adapter.supports(make_problem(case), device) is None:
            break
    res = evaluate(adapter, device, case, attribute_findings=False)
    if res.verdict in ("crashed", "timeout", "bad-output"):
        return _field("not measured", f"crashed ({res.verdict}): {res.error or res.checks[-1].detail}")
    y = next((c for c in res.checks if c.name == "y"), None)
    if y is None or y.ratio is None:
        return _field("not measured", res.skip_reason or res.error or "no y check")
    label = "stable (two-pass or Welford)" if y.verdict not in FAILING else "unstable (one-pass-like)"
    return _field(label, f"{case.id}: y error/tolerance = {y.ratio:.3g}")


def probe_one_value(adapter, device):
    """Training with n = 1. Probed without running statistics where the adapter allows it,
    so that the forward pass is measured apart from an unbiased estimator's n/(n-1)."""
    out = why = None
    for track in (False, True):
        case = Case("train", "float32", "nc", (1, 3), track=track)
        pb = make_problem(case)
        if adapter.supports(pb, device) is None:
            out, why = _run(adapter, pb, device)
            break
    else:
        return _field("not measured", f"unsupported: {adapter.supports(pb, device)}")
    if out is None:
        label = "raises" if why and why.startswith("raised") else "not measured"
        if label == "raises" and track:
            label = "raises with running statistics tracked"
        return _field(label, f"{case.id}: {why}")
    y = _unaffine(pb, out["y"][0])
    label = "defined (y = beta)" if np.allclose(y, 0.0) else ("NaN" if np.isnan(y).any() else "other")
    return _field(label, f"{case.id}: y = {y.tolist()}")


def fingerprint(adapter, device: str = "cpu") -> dict:
    fp = {"reduction": probe_reduction(adapter, device), "layouts": probe_layouts(adapter, device)}
    fp.update(probe_momentum(adapter, device))
    fp["estimator"] = probe_estimator(adapter, device)
    fp["eps"] = probe_eps(adapter, device)
    fp["inference"] = probe_inference(adapter, device)
    fp["frozen"] = probe_frozen(adapter, device)
    fp["variance"] = probe_variance(adapter, device)
    fp["one_value"] = probe_one_value(adapter, device)
    return fp


def compare(fp: dict, convention_name: str) -> list[str]:
    """Fields whose measurement contradicts the declared preset (unmeasured fields are not mismatches)."""
    c = preset(convention_name)
    bad = []

    def v(k):
        return fp.get(k, {}).get("value", "not measured")

    if v("reduction") not in ("not measured", "all axes but the channel"):
        bad.append("reduction")
    mom = v("momentum")
    want = {"ema": "new-batch weight f, as passed", "debiased": "zero-initialised debiased",
            "cumulative": "cumulative"}[c.schedule]
    if mom != "not measured" and not mom.startswith(want):
        bad.append("momentum")
    est = v("estimator")
    if est != "not measured" and est != c.estimator:
        bad.append("estimator")
    if v("eps") not in ("not measured", "as given"):
        bad.append("eps")
    init = v("init")
    if init.startswith("mean") and f"mean {c.init_mean:.6g}" not in init:
        bad.append("init")
    elif init.startswith("mean") and ", var" in init and f"var {c.init_var:.6g}" not in init:
        bad.append("init")
    if v("inference") == "uses batch statistics":
        bad.append("inference")
    fr = v("frozen")
    if fr != "not measured" and fr != c.frozen:
        bad.append("frozen")
    one = v("one_value")
    if one == "raises with running statistics tracked" and c.estimator == "unbiased":
        one = c.one_value   # the reference itself refuses n/(n-1) at n = 1: no evidence either way
    if (c.one_value == "raises") != (one.startswith("raises")) and one != "not measured":
        bad.append("one_value")
    if v("variance").startswith("unstable"):
        bad.append("variance")
    return bad


def main(argv=None) -> int:
    """Exit status: 0 when every measurement agrees with the declared preset, 1 when one
    contradicts it (a MISMATCH line; a finding may explain it), 2 on a usage error."""
    ap = argparse.ArgumentParser(prog="python -m bn_conformance.fingerprint",
                                 description="Measure an adapter's batch-norm conventions from probe cases. "
                                             "Exit 1 if a measurement contradicts the declared preset.")
    ap.add_argument("adapter", help="adapter name or glob, or MODULE:NAME / FILE.py:NAME[#adapter]")
    ap.add_argument("--device", default=None, help="device (default: every device the adapter offers here)")
    args = ap.parse_args(argv)
    from .repro import targets_for
    from .selection import SelectionError
    try:
        sel, targets = targets_for(args.adapter, args.device)
    except SelectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .evaluate import adapter_version
    status = 0
    for t in targets:
        adapter = sel.adapters[t.adapter]
        with np.errstate(all="ignore"):
            fp = fingerprint(adapter, t.device)
        bad = compare(fp, adapter.convention)
        probes_failed = [k for k, f in fp.items() if str(f.get("evidence", "")).startswith("crashed")
                         or ": crashed" in str(f.get("evidence", ""))]
        print(f"{adapter.name}@{t.device} ({adapter.framework} {adapter_version(adapter)}), "
              f"declared convention {adapter.convention!r}")
        for k, f in fp.items():
            flag = "MISMATCH" if k in bad else ""
            print(f"  {k:10s} {str(f['value']):<58s} {flag}\n  {'':10s}   {f['evidence']}")
        if bad or probes_failed:
            status = 1
        if probes_failed:
            print(f"  probes that crashed the adapter: {', '.join(probes_failed)}")
    return status


if __name__ == "__main__":
    sys.exit(main())


# The preset field each measurement speaks to (measurements with no preset field keep their name).
_AS_FIELD = {"reduction": "channel_axis", "momentum": "momentum_form", "init": "init_mean", "eps": "eps_default",
             "estimator": "estimator", "frozen": "frozen", "one_value": "one_value"}


def record(fp: dict, bad: list[str], run_id: str, adapter, device: str, known: dict) -> dict:
    """A results-file record of type "fingerprint" (reports/SCHEMA.md)."""
    fields = {}
    for k, f in fp.items():
        key = _AS_FIELD.get(k, k)
        if key in fields:  # layouts joins the reduction under channel_axis
            fields[key]["value"] += f"; {k}: {f['value']}"
            fields[key]["evidence"] += f"; {f['evidence']}"
            continue
        fields[key] = {"value": f["value"], "evidence": f["evidence"], "mismatch": k in bad,
                       "probe": k, "finding": known.get(k)}
    if "layouts" in fp and "channel_axis" in fields:
        fields["channel_axis"]["value"] = f"{fp['reduction']['value']}; accepts axis {fp['layouts']['value']}"
    from .evaluate import adapter_version
    return {"type": "fingerprint", "run_id": run_id, "adapter": adapter.name, "device": device,
            "framework": adapter.framework, "version": adapter_version(adapter), "convention": adapter.convention,
            "fields": fields, "mismatches": bad}


def judge_fingerprint(adapter, target, run) -> None:
    """Measure, record and assert one target's fingerprint (the fingerprint area's test). A
    mismatch with the declared preset fails unless a finding names ``fingerprint.<probe>``."""
    import pytest

    from . import findings as known_findings
    from .assertions import xfail
    from .evaluate import adapter_version
    with np.errstate(all="ignore"):
        fp = fingerprint(adapter, target.device)
    bad = compare(fp, adapter.convention)
    crashed = [p for p, f in fp.items() if str(f.get("evidence", "")).startswith("crashed")
               or ": crashed" in str(f.get("evidence", ""))]
    version = adapter_version(adapter)
    applicable = known_findings.applicable(adapter.name, version, target.device)
    known, unknown = {}, []
    for probe in bad:
        f = next((f for f in applicable if f.names(f"fingerprint.{probe}")), None)
        if f is not None:
            known[probe] = f.id
        else:
            unknown.append(probe)
    # a probe that measured nothing (the adapter cannot run it) neither triggers nor clears a finding
    measured = [p for p, f in fp.items() if f.get("value") != "not measured"]
    listed = [{"id": f.id, "triggered": f.id in known.values()} for f in applicable
              if any(f.names(f"fingerprint.{p}") for p in measured)]
    rec = record(fp, bad, run.run_id, adapter, target.device, known)
    rec["findings"] = listed
    run.write(rec)
    lines = [f"  {p}: measured {fp[p]['value']!r} -- {fp[p]['evidence']}" for p in unknown]
    if crashed:
        pytest.fail(f"{target.id}: fingerprint probes crashed, hung or returned garbage, so its conventions were "
                    f"not measured: " + "; ".join(f"{p}: {fp[p]['evidence']}" for p in crashed), pytrace=False)
    if unknown:
        pytest.fail(f"{target.id} declares convention {adapter.convention!r} but measures differently:\n"
                    + "\n".join(lines), pytrace=False)
    if known:
        xfail(f"{target.id}: measured conventions explained by findings {known}")
