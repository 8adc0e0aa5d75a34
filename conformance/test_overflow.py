"""Squared deviations beyond the accumulation dtype while every value and the normalised output are finite."""
import pytest


@pytest.mark.area("overflow")
def test_overflow(target, case, judge):
    judge(target, case)
