"""Constant channels at magnitudes from 1 to near the dtype's limit, in training and in inference at the
running mean with zero variance: the exact output is beta (tolerance 9 of conformance/tolerance.py)."""
import pytest


@pytest.mark.area("degenerate")
def test_degenerate(target, case, judge):
    judge(target, case)
