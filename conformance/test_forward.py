"""Training-mode forward output over every layout, dtype, affine setting and several eps."""
import pytest


@pytest.mark.area("forward")
def test_forward(target, case, judge):
    judge(target, case)
