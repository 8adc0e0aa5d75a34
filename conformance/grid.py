"""The curated grid: the same cases on every run, grouped by the area a test module covers.

Shapes are small (a kernel's logic, not its throughput, is under test) but reach every
rank, both channel positions, reduction lengths from 1 to a few thousand, and odd sizes.
"""
from __future__ import annotations

from itertools import product

from .case import Case

DTYPES = ("float16", "bfloat16", "float32", "float64")

# one shape per layout; n per channel in brackets
SHAPES = {
    "nc": (16, 5),                 # [16]
    "ncl": (4, 3, 7),              # [28]
    "nlc": (4, 7, 3),              # [28]
    "nchw": (2, 3, 4, 5),          # [40]
    "nhwc": (2, 4, 5, 3),          # [40]
    "ncdhw": (2, 3, 2, 3, 4),      # [48]
    "ndhwc": (2, 2, 3, 4, 3),      # [48]
}
LARGE = {"nc": (2048, 4), "nchw": (8, 4, 16, 16), "nhwc": (8, 16, 16, 4)}   # n = 2048


def _forward() -> list[Case]:
    out = [Case("train", dt, lay, shp) for lay, shp in SHAPES.items() for dt in DTYPES]
    out += [Case("train", "float32", lay, shp, affine=False) for lay, shp in SHAPES.items()]
    out += [Case("train", dt, lay, shp) for lay, shp in LARGE.items() for dt in ("float16", "float32")]
    out += [Case("train", "float32", "nchw", SHAPES["nchw"], eps=eps) for eps in (1e-3, 0.1, 1.0)]
    out += [Case("train", "float32", "nhwc", SHAPES["nhwc"], eps=eps) for eps in (1e-3, 0.1)]
    return out


def _conditioning() -> list[Case]:
    out = []
    for lay in ("nc", "nchw", "nhwc"):
        shp = SHAPES[lay]
        out += [Case("train", dt, lay, shp, d) for dt in ("float32", "float64") for d in ("offset1e2", "offset1e4", "heavy", "huge")]
        out += [Case("train", dt, lay, shp, d) for dt in ("float16", "bfloat16") for d in ("offset1e2", "heavy", "huge")]
        out += [Case("train", "float64", lay, shp, d) for d in ("offset1e6", "offset1e8")]
        out += [Case("infer", dt, lay, shp, d) for dt in ("float32", "float16") for d in ("offset1e4", "huge")]
    out += [Case("train", dt, "nchw", LARGE["nchw"], "offset1e4") for dt in ("float32", "float64")]
    return out


def _running() -> list[Case]:
    out = []
    for lay, dt, m in product(("nc", "nchw", "nhwc"), ("float32", "float64"), (0.1, 0.01, 0.5, 1.0, None)):
        out.append(Case("train", dt, lay, SHAPES[lay], momentum=m, steps=4))
    out += [Case("train", dt, "nchw", SHAPES["nchw"], steps=3) for dt in ("float16", "bfloat16")]
    out += [Case("train", "float32", lay, SHAPES[lay], "offset1e4", steps=3) for lay in ("nc", "nchw")]
    out += [Case("train", "float32", "nchw", (2, 3, 1, 1), steps=3), Case("train", "float32", "nc", (2, 3), steps=3)]
    return out


def _inference() -> list[Case]:
    out = [Case("infer", dt, lay, shp) for lay, shp in SHAPES.items() for dt in DTYPES]
    out += [Case("infer", "float32", lay, SHAPES[lay], track=False) for lay in ("nc", "nchw", "nhwc")]
    # 16-bit inference without running statistics: a training-mode call on 16-bit inputs
    out += [Case("infer", dt, "nc", SHAPES["nc"], track=False) for dt in ("float16", "bfloat16")]
    out += [Case("infer", "float32", "nchw", SHAPES["nchw"], affine=False)]
    out += [Case("train", "float32", lay, SHAPES[lay], track=False, steps=2) for lay in ("nc", "nchw")]
    return out


def _frozen() -> list[Case]:
    return [Case("frozen", dt, lay, SHAPES[lay], steps=2) for lay in ("nc", "nchw", "nhwc") for dt in ("float32", "float64")] + \
           [Case("frozen", "float16", "nchw", SHAPES["nchw"])]


def _gradients() -> list[Case]:
    out = [Case("train", dt, lay, SHAPES[lay], steps=1) for lay in ("nc", "ncl", "nchw", "nhwc", "ndhwc") for dt in DTYPES]
    out += [Case("infer", dt, lay, SHAPES[lay]) for lay in ("nc", "nchw", "nhwc") for dt in ("float32", "float64")]
    out += [Case("train", "float64", lay, SHAPES[lay], "offset1e4") for lay in ("nc", "nchw")]
    out += [Case("train", "float32", "nchw", LARGE["nchw"])]
    return out


def _properties() -> list[Case]:
    conv = [Case("train", dt, lay, SHAPES[lay], momentum=0.5, steps=40, fixed=True)
            for lay in ("nc", "nchw", "nhwc") for dt in ("float32", "float64")]
    iso = [Case(mode, "float32", lay, SHAPES[lay], d) for mode in ("train", "infer")
           for lay in ("nc", "nchw", "nhwc") for d in ("nan", "inf")]
    # an Inf carried through several running-statistics updates (Inf - Inf in some update forms)
    iso += [Case("train", "float32", lay, SHAPES[lay], "inf", steps=3) for lay in ("nc", "nchw", "nhwc")]
    return conv + iso


def _edge() -> list[Case]:
    out = []
    for lay in ("nc", "nchw", "nhwc"):
        shp = SHAPES[lay]
        out += [Case(mode, dt, lay, shp, d) for mode in ("train", "infer") for dt in ("float32", "float16")
                for d in ("const", "tiny")]
        out += [Case("train", "float32", lay, shp, "tiny", eps=1e-3)]
        out += [Case("train", "float32", lay, shp, eps=0.0), Case("infer", "float32", lay, shp, eps=0.0)]
    single = {"nc": (1, 3), "nchw": (1, 3, 1, 1), "nhwc": (1, 1, 1, 3)}
    empty = {"nc": (0, 3), "nchw": (0, 3, 2, 2), "nhwc": (0, 2, 2, 3)}
    for lay in ("nc", "nchw", "nhwc"):
        for trs in (True, False):
            out += [Case("train", "float32", lay, single[lay], track=trs), Case("infer", "float32", lay, single[lay], track=trs)]
            out += [Case("train", "float32", lay, empty[lay], track=trs, steps=2), Case("infer", "float32", lay, empty[lay], track=trs)]
    return out


def _exact() -> list[Case]:
    out = [Case("train", dt, lay, SHAPES[lay], "exact", momentum=1.0) for lay in ("nc", "nchw", "nhwc")
           for dt in DTYPES]
    out += [Case("train", "float32", "nchw", LARGE["nchw"], "exact", momentum=1.0)]
    return out


def _sync() -> list[Case]:
    """Synchronised (cross-replica) batch norm: the batch split across replicas, statistics
    pooled over every replica's values. Equal and unequal shards, and shards with different
    means (the pooled variance is not the mean of the shards' variances)."""
    out = []
    for reps in ((4, 4), (2, 6), (2, 2, 2, 2)):
        for d in ("normal", "shardshift"):
            out += [Case("train", dt, "nc", (8, 5), d, steps=2, replicas=reps) for dt in ("float32", "float64")]
    for reps in ((2, 2), (1, 3)):
        out += [Case("train", "float32", lay, shp, "shardshift", steps=2, replicas=reps)
                for lay, shp in (("nchw", (4, 3, 4, 5)), ("nhwc", (4, 4, 5, 3)))]
    out += [Case("infer", "float32", "nc", (8, 5), "shardshift", replicas=(4, 4))]
    out += [Case("train", "float16", "nc", (8, 5), "shardshift", steps=2, replicas=(4, 4))]
    return out


def _lifecycle() -> list[Case]:
    """A layer exactly as the framework creates it, no statistics supplied: inference before
    any training step, after initialising in inference mode and (where initialising runs a
    forward pass: Flax, Haiku) in training mode. The reference: a fresh layer holds the
    preset's initial statistics (initialisation is not a training step). The first training
    step from the framework's own initial state is every "train" case."""
    out = []
    for lay in ("nc", "nchw", "nhwc"):
        shp = SHAPES[lay]
        out += [Case("fresh", dt, lay, shp, init_train=it) for dt in ("float32", "float64") for it in (False, True)]
    out += [Case("fresh", "float32", "nc", SHAPES["nc"], track=False), Case("fresh", "float16", "nchw", SHAPES["nchw"])]
    return out


def _invalid() -> list[Case]:
    """Invalid supplied statistics in channel 0 (vocab.SUPPLIED): negative, zero (eps > 0 and
    eps = 0), NaN and +Inf variance, NaN mean; in inference, frozen, and as the starting state
    of training. The reference refuses var + eps <= 0 and propagates NaN/Inf by IEEE
    arithmetic (reference.batchnorm.check_inference_variance); presets declare each
    framework's policy (invalid_stats)."""
    out = []
    for kind in ("negvar", "zerovar", "nanvar", "infvar", "nanmean"):
        out += [Case("infer", "float32", lay, SHAPES[lay], stats=kind) for lay in ("nc", "nchw")]
        out += [Case("train", "float32", "nc", SHAPES["nc"], stats=kind, steps=2),
                Case("frozen", "float32", "nc", SHAPES["nc"], stats=kind)]
    out += [Case("infer", "float32", "nc", SHAPES["nc"], stats="zerovar", eps=0.0)]
    out += [Case("train", dt, "nchw", SHAPES["nchw"], stats="given", steps=2) for dt in ("float32", "float64")]
    return out


def _degenerate() -> list[Case]:
    """Every channel constant, magnitudes from 1 to near the dtype's limit ("constant"): the
    exact output is beta, in training (zero batch variance) and in inference (inputs equal
    to the running mean with zero running variance); tolerance.py 9 says what a stable
    algorithm guarantees there."""
    return [Case(mode, dt, lay, SHAPES[lay], "constant") for mode in ("train", "infer") for dt in DTYPES
            for lay in ("nc", "nchw", "nhwc")]


def _overflow() -> list[Case]:
    """Squared deviations beyond the accumulation dtype (float32; float16 accumulated in
    float16) while every value and the normalised output are finite ("overflow")."""
    return [Case("train", dt, lay, SHAPES[lay], "overflow") for dt in ("float16", "bfloat16", "float32")
            for lay in ("nc", "nchw", "nhwc")]


def _shapes() -> list[Case]:
    """Shape classes kernels specialise on, each for a reason:
      N = 1 with several values per channel (one image): the batch axis has one entry, the
        reduction runs over the spatial axes alone;
      8, 16, 32 channels and 17 (vector widths, and a tail that is not a multiple): kernels
        vectorise over channels in channels-last layouts;
      16-bit inputs with a few thousand values per channel: accumulation in the input's
        precision shows only with long reductions;
      16-bit inputs without affine parameters and without running statistics: mixed-precision
        kernels key on the parameters' dtype (PyTorch's CPU kernel does)."""
    out = []
    one = {"nchw": (1, 3, 4, 5), "nhwc": (1, 4, 5, 3), "ncl": (1, 3, 7)}
    out += [Case(m, dt, lay, shp) for lay, shp in one.items() for dt in ("float32", "float16") for m in ("train", "infer")]
    for c in (8, 16, 17, 32):
        out += [Case("train", dt, "nc", (64, c)) for dt in ("float32", "float16", "bfloat16")]
        out += [Case("train", "float32", "nchw", (2, c, 4, 4)), Case("train", "float32", "nhwc", (2, 4, 4, c))]
    for dt in ("float16", "bfloat16"):
        out += [Case("train", dt, "nc", (4096, 4)), Case("train", dt, "nchw", (16, 4, 16, 16)),
                Case("train", dt, "nhwc", (16, 16, 16, 4)), Case("train", dt, "nchw", (16, 4, 16, 16), "offset1e2")]
        out += [Case("train", dt, lay, SHAPES[lay], affine=False, track=False) for lay in ("nc", "nchw", "nhwc")]
    return out


AREAS = {
    "forward": _forward, "conditioning": _conditioning, "running": _running, "inference": _inference,
    "frozen": _frozen, "gradients": _gradients, "properties": _properties, "edge": _edge, "exact": _exact,
    "sync": _sync, "lifecycle": _lifecycle, "invalid": _invalid, "degenerate": _degenerate, "overflow": _overflow,
    "shapes": _shapes,
}


def cases(area: str) -> list[Case]:
    seen, out = set(), []
    for c in AREAS[area]():
        if c.id not in seen:
            seen.add(c.id)
            out.append(c)
    return out


def all_cases() -> list[Case]:
    seen, out = set(), []
    for area in AREAS:
        for c in cases(area):
            if c.id not in seen:
                seen.add(c.id)
                out.append(c)
    return out
