"""HTML difference report of the batch-normalisation conformance suite.

    from bn_conformance.reports import build_report
    build_report([Path("results/")], Path("report.html"))

or ``python -m bn_conformance.reports merge RESULTS... -o report.html`` / ``python -m bn_conformance.reports build RESULTS_DIR``.
The results-file schema is documented in reports/SCHEMA.md.
"""
from __future__ import annotations

from .build import build_report
from .model import ReportError

__all__ = ["build_report", "ReportError"]
