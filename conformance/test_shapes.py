"""Shape classes kernels specialise on: one sample with several values per channel, 8/16/17/32 channels,
16-bit inputs with thousands of values per channel, 16-bit inputs without parameters or statistics."""
import pytest


@pytest.mark.area("shapes")
def test_shapes(target, case, judge):
    judge(target, case)
