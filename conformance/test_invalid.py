"""Invalid supplied statistics (negative, zero, NaN, Inf variance; NaN mean) in inference, frozen and as
the starting state of training: error parity with the reference, which refuses var + eps <= 0."""
import pytest


@pytest.mark.area("invalid")
def test_invalid(target, case, judge):
    judge(target, case)
