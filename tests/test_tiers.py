"""The tiers (conformance/tiers.py): the default tier is a covering design of the full grid
that keeps every finding and every planted bug the full tier triggers."""
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from bn_conformance import grid, tiers
from bn_conformance.compare import FAILING
from bn_conformance.evaluate import evaluate
from tests.planted.backends import BUGS, PLANTED

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("area", sorted(grid.AREAS))
def test_default_tier_covers_every_pair_of_axis_values(area):
    full, default = grid.cases(area), tiers.cases(area, "default")
    want = set().union(*(tiers._pairs(c) for c in full))
    have = set().union(*(tiers._pairs(c) for c in default))
    assert want <= have, f"{area}: pairs the default tier misses: {sorted(want - have)[:5]}"
    assert {c.id for c in default} <= {c.id for c in full}


def test_tiers_are_nested_and_deterministic():
    q, d, f = ({c.id for c in tiers.all_cases(t)} for t in ("quick", "default", "full"))
    assert q <= f and d <= f and len(q) < len(d) < len(f)
    tiers._default.cache_clear()
    assert {c.id for c in tiers.all_cases("default")} == d


def _caught(bug) -> dict:
    """check name -> case ids, over the full grid, on which the planted bug is reported."""
    out = defaultdict(set)
    with np.errstate(all="ignore"):
        for case in grid.all_cases():
            for c in evaluate(PLANTED[bug](), "cpu", case).checks:
                if c.verdict in FAILING:
                    out[c.name].add(case.id)
    return out


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_default_tier_catches_every_planted_bug_the_full_tier_catches(bug):
    """Triggered: reported at all, and on each check the bug must be caught on (BUGS) that
    the full tier reports it on."""
    default = {c.id for c in tiers.all_cases("default")}
    caught = _caught(bug)
    assert caught, f"planted bug {bug!r} is not caught even by the full tier"
    assert set().union(*caught.values()) & default, f"planted bug {bug!r}: the default tier does not catch it"
    lost = [name for name in BUGS[bug][1] if caught.get(name) and not caught[name] & default]
    assert not lost, f"planted bug {bug!r}: the full tier reports it on {lost}, the default tier does not"


def test_default_tier_keeps_every_finding_of_the_committed_full_run():
    """benchmarks/coverage.json records, from a full-tier run of the tested versions, the grid
    cases on which each (adapter, finding) triggered (benchmarks/coverage.py writes it)."""
    data = json.loads((ROOT / "benchmarks" / "coverage.json").read_text())
    default = {c.id for c in tiers.all_cases("default")}
    lost = [k for k, ids in data["triggers"].items() if not set(ids) & default]
    assert data["triggers"], "the coverage record holds no triggered finding"
    assert not lost, f"findings the default tier would no longer trigger: {lost}"
