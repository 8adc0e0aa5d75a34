"""Edge inputs: constant channel, variance far below eps, one value per channel, empty batch; error parity with the reference."""
import pytest


@pytest.mark.area("edge")
def test_edge(target, case, judge):
    judge(target, case)
