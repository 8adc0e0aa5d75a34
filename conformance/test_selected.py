"""Cases named with --case that belong to no grid area (hypothesis-generated ones, or any
descriptor a user writes) run here, once per adapter and device."""
import pytest


@pytest.mark.area("selected")
def test_selected(target, case, judge):
    judge(target, case)
