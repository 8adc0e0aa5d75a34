"""The tiers (conformance/tiers.py): the pairwise tier is a covering design of the full grid,
the default tier a cover of every axis value, each area's modes and dtypes, and every finding
and planted bug the full tier triggers; both keep every finding and planted bug."""
import pytest

from bn_conformance import grid, tiers
from tests.planted.backends import BUGS, caught_on

KEEPING = ("default", "pairwise")   # the tiers that promise every finding and planted bug of the full tier


@pytest.mark.parametrize("area", sorted(grid.AREAS))
def test_pairwise_tier_covers_every_pair_of_axis_values(area):
    full, pairwise = grid.cases(area), tiers.cases(area, "pairwise")
    want = set().union(*(tiers._pairs(c) for c in full))
    have = set().union(*(tiers._pairs(c) for c in pairwise))
    assert want <= have, f"{area}: pairs the pairwise tier misses: {sorted(want - have)[:5]}"
    assert {c.id for c in pairwise} <= {c.id for c in full}


@pytest.mark.parametrize("area", sorted(grid.AREAS))
def test_default_tier_has_every_axis_value_and_each_areas_modes_and_dtypes(area):
    full, default = grid.cases(area), tiers.cases(area, "default")
    for axis in ("mode", "dtype"):
        want = {tiers.features(c)[axis] for c in full}
        have = {tiers.features(c)[axis] for c in default}
        assert want <= have, f"{area}: the default tier has no case with {axis} in {sorted(want - have)}"
    values = lambda cs: {(k, repr(v)) for c in cs for k, v in tiers.features(c).items()}  # noqa: E731
    missing = values(grid.all_cases()) - values(tiers.all_cases("default"))
    assert not missing, f"axis values no default case has: {sorted(missing)[:5]}"


def test_tiers_are_nested_and_deterministic():
    q, d, p, f = ({c.id for c in tiers.all_cases(t)} for t in ("quick", "default", "pairwise", "full"))
    assert q <= f and d <= p <= f and len(q) < len(d) < len(p) < len(f)
    tiers._pairwise.cache_clear()
    tiers._default_ids.cache_clear()
    assert {c.id for c in tiers.all_cases("default")} == d and {c.id for c in tiers.all_cases("pairwise")} == p


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_keeping_tiers_catch_every_planted_bug_the_full_tier_catches(bug):
    """Triggered: reported at all, and on each check the bug must be caught on (BUGS) that
    the full tier reports it on; and the committed evidence the default tier is built from
    (coverage.json "planted") is what the suite reports now."""
    caught = caught_on(bug, grid.all_cases())
    assert caught, f"planted bug {bug!r} is not caught even by the full tier"
    assert tiers.evidence()["planted"].get(bug) == {k: sorted(v) for k, v in sorted(caught.items())}, \
        f"planted bug {bug!r}: conformance/coverage.json is out of date (python benchmarks/coverage.py --planted-only)"
    for tier in KEEPING:
        ids = {c.id for c in tiers.all_cases(tier)}
        assert set().union(*caught.values()) & ids, f"planted bug {bug!r}: the {tier} tier does not catch it"
        lost = [name for name in BUGS[bug][1] if caught.get(name) and not caught[name] & ids]
        assert not lost, f"planted bug {bug!r}: the full tier reports it on {lost}, the {tier} tier does not"


@pytest.mark.parametrize("tier", KEEPING)
def test_keeping_tiers_keep_every_finding_of_the_committed_full_run(tier):
    """conformance/coverage.json records, from a full-tier run of the tested versions, the grid
    cases on which each (adapter, finding) triggered (benchmarks/coverage.py writes it)."""
    data = tiers.evidence()
    ids = {c.id for c in tiers.all_cases(tier)}
    lost = [k for k, cases in data["triggers"].items() if not set(cases) & ids]
    assert data["triggers"], "the coverage record holds no triggered finding"
    assert not lost, f"findings the {tier} tier would no longer trigger: {lost}"
