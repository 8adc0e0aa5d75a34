"""A user adapter that could not be loaded (its import, constructor or declared metadata
failed in its worker) is a failing test, so the run reports it and does not exit 0."""
import pytest


def test_adapter_loads(target, load_error):
    spec, why = load_error
    pytest.fail(f"{spec}: {why}", pytrace=False)
