"""Property-based cases: random modes, layouts, shape classes, dtypes, distributions, momenta,
eps, supplied statistics (bn_conformance.strategies).

Unsupported examples are rejected (hypothesis draws others) and known findings are
recorded without ending the search. Profiles: "ci" (derandomized, 15 examples per adapter,
shapes from the grid's shape classes) and "thorough" (400 examples, sizes explored as
well), chosen with --hypothesis-profile or BN_HYPOTHESIS_PROFILE. A failure prints the case
descriptor to rerun.
"""
from hypothesis import given, settings

from bn_conformance.strategies import cases

_EXPLORE = settings().max_examples > 100      # the "thorough" profile explores sizes too


@given(case=cases(explore=_EXPLORE))
def test_random_cases(target, case, judge):
    judge(target, case, generated=True)
