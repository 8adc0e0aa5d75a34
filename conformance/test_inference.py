"""Inference with supplied running statistics ('my supplied mean and variance have no effect'), and inference without tracked statistics."""
import pytest


@pytest.mark.area("inference")
def test_inference(target, case, judge):
    judge(target, case)
