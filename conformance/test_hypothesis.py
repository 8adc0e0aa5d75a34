"""Property-based cases: random layouts, shapes, dtypes, distributions, momenta, modes.

Unsupported examples are rejected (hypothesis draws others) and known deviations are
recorded without ending the search. Profiles: "ci" (derandomized, 15 examples per adapter) and "thorough" (400), chosen with
--hypothesis-profile or BN_HYPOTHESIS_PROFILE. A failure prints the case descriptor to rerun.
"""
from hypothesis import given

from bn_conformance.strategies import cases


@given(case=cases(modes=("train", "infer", "frozen")))
def test_random_cases(target, case, judge):
    judge(target, case, generated=True)
