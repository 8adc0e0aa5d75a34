"""The exact tier: inputs whose batch mean and variance are exactly representable, so the statistics get zero tolerance."""
import pytest


@pytest.mark.area("exact")
def test_exact(target, case, judge):
    judge(target, case)
