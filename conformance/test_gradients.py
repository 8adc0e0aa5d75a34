"""Input, gamma and beta gradients in training mode (through the batch statistics) and inference mode (statistics constant)."""
import pytest


@pytest.mark.area("gradients")
def test_gradients(target, case, judge):
    judge(target, case)
