"""Tiers: how much of the grid a run covers (``--tier``).

  full      every case the grid defines (conformance/grid.py): 412 cases.
  pairwise  a covering design over the full grid, area by area: every pair of axis values that
            occurs together in an area's full grid (mode x dtype, dtype x distribution,
            layout x distribution, shape class x dtype, ...: ``features``) occurs together in
            a case of the tier. Chosen greedily, each step taking the case that covers the most
            uncovered pairs, where a case whose compiled signature (shape, dtype, layout,
            affine: what XLA and Inductor compile once for) is not yet in the tier costs
            ``NEW_SIGNATURE`` pairs, so the tier reuses compilations; then the cases in
            ``PINNED``. For a broad look after an upgrade: 269 cases, 82 signatures.
  default   the smallest run that keeps every known behaviour in sight: a greedy cover, drawn
            from the pairwise tier's cases, of (1) every value of every axis (``features``);
            (2) in each area, every mode and dtype the area has, so each test module runs
            each of them; (3) every (adapter, finding) pair the committed full run triggered,
            on one of its triggering cases; (4) every check each planted bug of
            tests/planted/backends.py is caught on in the full grid, on one of the cases that
            catch it. (3) and (4) are the committed evidence ``coverage.json`` beside this
            module (benchmarks/coverage.py writes it from a full run). A new signature costs
            ``NEW_SIGNATURE`` requirements, as above. tests/test_tiers.py checks that the
            planted-bug evidence is current and that the tier meets all four.
            What it gives up against ``pairwise``: the pairs of axis values that no known
            finding or planted bug needs (a new interaction bug shows in ``pairwise`` and
            ``full`` first); the hypothesis examples still draw from the whole space.
  quick     for a first look at a new backend: in each area, the cheapest float32 case of each
            mode the area has.

The same construction runs on every machine and gives the same cases (no randomness, ties
broken by case id).
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from itertools import combinations
from pathlib import Path

from . import grid
from .case import Case

TIERS = ("quick", "default", "pairwise", "full")
NEW_SIGNATURE = 3

# case id -> why the pairwise tier keeps it although the covering design does not pick it
PINNED: dict[str, str] = {
    "train_bf16_nc_16x5_normal_m0.1_e1e-05_k1_noaff_notrs_s0":
        "torch-cpu-16bit-no-params-input-precision-stats: in the full grid it triggers only on these two "
        "bfloat16 cases (conformance/coverage.json)",
    "train_bf16_nchw_2x3x4x5_normal_m0.1_e1e-05_k1_noaff_notrs_s0":
        "torch-cpu-16bit-no-params-input-precision-stats (torch.nn.channels_last triggers on this one only)",
}


def shape_class(c: Case) -> str:
    n, N, C = c.n, c.shape[0] if c.shape else 0, c.channels
    if n == 0:
        return "empty"
    if n == 1:
        return "one value"
    if N == 1:
        return "one sample"
    if C >= 8:
        return f"{C} channels"
    if n >= 1000:
        return "long"
    return "small"


def features(c: Case) -> dict:
    steps = "1" if c.steps == 1 else ("few" if c.steps < 10 else "many")
    return {"mode": c.mode, "dtype": c.dtype, "layout": c.layout, "dist": c.dist,
            "momentum": "cumulative" if c.momentum is None else repr(c.momentum), "eps": repr(c.eps),
            "steps": steps, "affine": c.affine, "track": c.track, "fixed": c.fixed, "stats": c.stats,
            "replicas": None if not c.replicas else ("equal" if len(set(c.replicas)) == 1 else "unequal"),
            "init": c.init_train, "shape": shape_class(c)}


def _pairs(c: Case) -> frozenset:
    f = sorted((k, repr(v)) for k, v in features(c).items())
    return frozenset((a, b) for a, b in combinations(f, 2))


def signature(c: Case) -> tuple:
    return (c.shape, c.dtype, c.layout, c.affine)


def _cost(c: Case) -> int:
    return math.prod(c.shape) * c.steps


@lru_cache(maxsize=None)
def _pairwise(area: str) -> tuple[Case, ...]:
    full = grid.cases(area)
    pairs = {c.id: _pairs(c) for c in full}
    need = set().union(*pairs.values()) if pairs else set()
    chosen: list[Case] = []
    sigs: set = set()
    while need:
        def score(c):
            gain = len(pairs[c.id] & need)
            return (gain - (NEW_SIGNATURE if signature(c) not in sigs and gain else 0), gain, -_cost(c), c.id)
        best = max((c for c in full if pairs[c.id] & need), key=score)
        chosen.append(best)
        sigs.add(signature(best))
        need -= pairs[best.id]
    ids = {c.id for c in chosen} | {cid for cid in PINNED if any(c.id == cid for c in full)}
    return tuple(c for c in full if c.id in ids)


def evidence() -> dict:
    """The committed evidence the default tier keeps: ``triggers`` ("adapter@device finding" ->
    grid case ids of the full run it triggered on) and ``planted`` (bug -> check -> case ids)."""
    return json.loads(Path(__file__).with_name("coverage.json").read_text(encoding="utf-8"))


def requirements(c: Case, area: str, ev: dict) -> set:
    """What case ``c`` of ``area`` contributes to the default tier's cover."""
    out = {("value", k, repr(v)) for k, v in features(c).items()}
    out |= {("area mode", area, c.mode), ("area dtype", area, c.dtype)}
    out |= {("finding", k) for k, ids in ev["triggers"].items() if c.id in ids}
    out |= {("planted", bug, check) for bug, checks in ev["planted"].items()
            for check, ids in checks.items() if c.id in ids}
    return out


@lru_cache(maxsize=None)
def _default_ids() -> frozenset:
    ev = evidence()
    pool: dict = {}
    req: dict = {}
    for area in grid.AREAS:
        for c in _pairwise(area):
            pool.setdefault(c.id, c)
            req[c.id] = req.get(c.id, set()) | requirements(c, area, ev)
    need = set().union(*req.values())
    chosen: set = set()
    sigs: set = set()
    while need:
        def score(c):
            gain = len(req[c.id] & need)
            return (gain - (NEW_SIGNATURE if signature(c) not in sigs and gain else 0), gain, -_cost(c), c.id)
        best = max((c for c in pool.values() if req[c.id] & need), key=score)
        chosen.add(best.id)
        sigs.add(signature(best))
        need -= req[best.id]
    return frozenset(chosen)


@lru_cache(maxsize=None)
def _quick(area: str) -> tuple[Case, ...]:
    full = grid.cases(area)
    out = {}
    for c in sorted(full, key=lambda c: (c.dtype != "float32", _cost(c), c.id)):
        out.setdefault(c.mode, c)
    return tuple(c for c in full if c in out.values())


def cases(area: str, tier: str = "default") -> list[Case]:
    if tier not in TIERS:
        raise ValueError(f"tier {tier!r} not in {TIERS}")
    if tier == "full":
        return grid.cases(area)
    if tier == "pairwise":
        return list(_pairwise(area))
    if tier == "default":
        ids = _default_ids()
        return [c for c in _pairwise(area) if c.id in ids]
    return list(_quick(area))


def judged_cases(tier: str) -> list[Case]:
    """The grid a run's findings are judged against (``findings.judge_run``): the tier's own
    cases for ``default``, ``pairwise`` and ``full``, whose coverage of the findings is proven; for
    ``quick``, which promises no coverage (one case may be all a finding meets, and a finding
    about what may happen on a few values need not happen on it), the default tier's, so a
    quick run never calls a finding stale."""
    return all_cases("default" if tier == "quick" else tier)


def all_cases(tier: str = "default") -> list[Case]:
    seen, out = set(), []
    for area in grid.AREAS:
        for c in cases(area, tier):
            if c.id not in seen:
                seen.add(c.id)
                out.append(c)
    return out
