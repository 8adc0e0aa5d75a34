"""Running statistics after each of K steps: momentum forms, cumulative average, biased vs unbiased estimator, initial values."""
import pytest


@pytest.mark.area("running")
def test_running(target, case, judge):
    judge(target, case)
