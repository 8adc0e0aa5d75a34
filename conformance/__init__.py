"""bn_conformance: the batch-normalization conformance suite.

The repository's ``conformance/`` folder is this package; ``reference/``, ``adapters/`` and
``reports/`` are its subpackages ``bn_conformance.reference``, ``.adapters`` and
``.reports`` (pyproject.toml maps them). Run the suite with ``pytest conformance/`` in the
checkout, or ``bn-conformance run`` / ``pytest --pyargs bn_conformance`` where it is installed.
"""
__version__ = "0.2.0"
