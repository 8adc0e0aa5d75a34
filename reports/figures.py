"""Figures as inline base64 PNG (matplotlib, Agg backend): nothing is fetched when viewing."""
from __future__ import annotations

import base64
import io
import math
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from .model import Model, case_dtype, conditioning, num  # noqa: E402

FLOOR = 1e-6      # ratios of 0 are drawn at this floor (log axes)
CEIL = 1e9        # infinite ratios (non-finite mismatch) are drawn at this ceiling
DPI = 84
LINES_CAP = 400   # lines per adapter in the running-statistics figure
POINTS_CAP = 600  # points per group drawn over a box of the distribution figure


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _clip(r: float) -> float:
    return CEIL if math.isinf(r) else min(max(r, FLOOR), CEIL)


def _finish(ax, xlabel, ylabel):
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.axhline(1.0, color="#c0392b", lw=1, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)


def ratio_vs_conditioning(m: Model) -> str | None:
    pts = defaultdict(list)
    for r in m.rows:
        c, ratio = conditioning(r.rec["case_id"]), r.ratio
        if c is None or ratio is None or math.isnan(ratio):
            continue
        pts[f"{r.rec['adapter']} ({r.rec['device']})"].append((c, _clip(ratio)))
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(9.5 if len(pts) > 12 else 7, 3.6), layout="constrained")
    for i, (label, ps) in enumerate(sorted(pts.items())):
        jitter = 1.0 + 0.06 * (i - len(pts) / 2)
        ax.scatter([p[0] * jitter for p in ps], [p[1] for p in ps], s=14, alpha=0.7, label=label[:48])
    ax.set_xscale("log")
    _finish(ax, "mean offset / spread of the inputs (dist: normal = 1, offsetK = K)", "worst |error| / tolerance")
    ax.set_title("Error/tolerance vs conditioning (one point per case)", fontsize=10)
    _legend(ax, len(pts))
    return _png(fig)


def ratio_distribution(m: Model) -> str | None:
    groups = defaultdict(list)
    for r in m.rows:
        for c in r.checks:
            x = num(c.get("ratio"))
            if x is None or math.isnan(x):
                continue
            groups[(r.rec["adapter"], r.rec["device"], case_dtype(r.rec["case_id"]))].append(_clip(x))
    if not groups:
        return None
    keys = sorted(groups)[:40]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(keys) + 2), 4.4), layout="constrained")
    ax.boxplot([groups[k] for k in keys], whis=(0, 100), widths=0.6)
    for i, k in enumerate(keys, 1):
        ys = groups[k]
        ys = ys[::-(-len(ys) // POINTS_CAP)]       # every k-th point: at most POINTS_CAP drawn per group
        ax.scatter([i] * len(ys), ys, s=4, alpha=0.35, color="#34495e")
    ax.set_xticks(range(1, len(keys) + 1))
    ax.set_xticklabels([f"{a[:22]}\n{d} {dt}" for a, d, dt in keys], rotation=60, ha="right", fontsize=7)
    _finish(ax, "", "|error| / tolerance per check")
    ax.set_title("Distribution of error/tolerance per adapter, device and dtype (box: min-max, quartiles)", fontsize=10)
    return _png(fig)


def running_over_steps(m: Model) -> str | None:
    """Running statistics over training steps: |error|/tolerance per step of every
    running_mean/running_var check (the per-step record of the results file), one line
    per case, one colour per adapter."""
    series = defaultdict(list)
    for r in m.rows:
        for c in r.checks:
            st = c.get("steps")
            if c.get("name") not in ("running_mean", "running_var") or not isinstance(st, dict):
                continue
            ys = [num(v) for v in st.get("ratio", [])]
            if len(ys) < 2 or any(v is None for v in ys):
                continue
            series[r.rec["adapter"] + "@" + r.rec["device"]].append([_clip(v) for v in ys])
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(9.5 if len(series) > 12 else 7, 3.4), layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, lines) in enumerate(sorted(series.items())):
        col = colours[i % len(colours)]
        # one LineCollection per adapter (thousands of Line2D artists take seconds to draw)
        segs = [list(zip(range(1, len(ys) + 1), ys)) for ys in lines[:LINES_CAP]]
        ax.add_collection(LineCollection(segs, colors=col, alpha=0.35, linewidths=1, label=label[:40]))
    ax.autoscale_view()
    _finish(ax, "training step", "max |error| / tolerance")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title("Running statistics over steps, against the reference", fontsize=10)
    _legend(ax, len(series))
    return _png(fig)


def _legend(ax, n: int) -> None:
    """A legend at a fixed place (loc="best" scans every point: seconds on a full run)."""
    if n > 12:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, ncol=1 + n // 24)
    else:
        ax.legend(fontsize=7, loc="upper left")


def all_figures(m: Model) -> list[dict]:
    out = []
    for title, fn, note in (
        ("Error/tolerance vs conditioning", ratio_vs_conditioning,
         "Cases whose inputs are normal (1) or offset by K times their spread; other distributions are left out. "
         "Ratios of 0 are drawn at 1e-6 and infinite ones (non-finite mismatches) at 1e9; the dashed line is the tolerance."),
        ("Distribution of error/tolerance", ratio_distribution,
         "Every check with a ratio, grouped by adapter, device and dtype (first 40 groups)."),
        ("Running statistics over steps", running_over_steps,
         "One line per running_mean/running_var check of a multi-step case: the largest |error|/tolerance at each "
         "step. A line that climbs means error accumulating across updates; above the dashed line is a failure."),
    ):
        try:
            src = fn(m)
        except Exception as exc:  # noqa: BLE001 -- a plotting problem must not stop the report
            out.append({"title": title, "src": None, "note": f"figure failed: {type(exc).__name__}: {exc}"})
            continue
        out.append({"title": title, "src": src, "note": note if src else "no data for this figure in these results"})
    return out
