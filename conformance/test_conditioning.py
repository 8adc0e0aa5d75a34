"""Large mean offsets, heavy tails and magnitudes near the dtype's limits: where one-pass variances and low-precision accumulation fail."""
import pytest


@pytest.mark.area("conditioning")
def test_conditioning(target, case, judge):
    judge(target, case)
