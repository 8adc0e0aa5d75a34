"""The framework's idiomatic freeze (Keras trainable=False; PyTorch requires_grad_(False)) called in training mode, judged against its declared semantics."""
import pytest


@pytest.mark.area("frozen")
def test_frozen(target, case, judge):
    judge(target, case)
