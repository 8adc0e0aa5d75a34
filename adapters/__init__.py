"""Backends the suite can run: one module per framework, declared in ``registry``.

An adapter maps a case (``protocol.Problem``) onto one framework's batch-norm API and returns
NumPy arrays; most fill in the scenario's hooks (``scenario.Hooks``). Nothing here imports a
framework: a module imports its framework when one of its adapters is built.
"""
from __future__ import annotations

from .protocol import Adapter, AdapterInfo, Problem, Target
from .registry import BY_NAME, ENTRIES, Entry
from .scenario import Hooks, Step, play

__all__ = ["Adapter", "AdapterInfo", "BY_NAME", "ENTRIES", "Entry", "Hooks", "Problem", "Step", "Target", "play"]
