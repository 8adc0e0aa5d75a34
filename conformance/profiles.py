"""Hypothesis profiles of the suite: "ci" (the default: derandomized, 15 examples per adapter,
the same cases on every run) and "thorough" (400 random examples per adapter). Choose with
``--hypothesis-profile=thorough`` or BN_HYPOTHESIS_PROFILE."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much]


def load_profile(config=None) -> None:
    """Register the profiles and load one: --hypothesis-profile wins, then BN_HYPOTHESIS_PROFILE,
    then "ci"."""
    settings.register_profile("ci", derandomize=True, max_examples=15, deadline=None, print_blob=True,
                              suppress_health_check=_SUPPRESS)
    settings.register_profile("thorough", max_examples=400, deadline=None, print_blob=True,
                              suppress_health_check=_SUPPRESS)
    settings.load_profile(chosen(config))


def chosen(config=None) -> str:
    """The profile's name: --hypothesis-profile, else BN_HYPOTHESIS_PROFILE, else "ci"."""
    name = None
    if config is not None:
        try:
            name = config.getoption("--hypothesis-profile")
        except ValueError:
            name = None
    return name or os.environ.get("BN_HYPOTHESIS_PROFILE", "ci")
