"""A layer exactly as the framework creates it: inference before any training step, after initialising
in inference mode and (where initialisation runs a forward pass) in training mode."""
import pytest


@pytest.mark.area("lifecycle")
def test_lifecycle(target, case, judge):
    judge(target, case)
