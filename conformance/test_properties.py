"""Identities on the implementation's own outputs: gradient sums, orthogonality, forward/predict convergence on a fixed batch, NaN isolation."""
import pytest


@pytest.mark.area("properties")
def test_properties(target, case, judge):
    judge(target, case)
