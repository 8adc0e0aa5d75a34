"""bn-conformance: the batch-norm conformance suite from the command line, with or without
the repository (``python -m bn_conformance`` is the same).

  bn-conformance [run] [PYTEST ARGS...]   run the suite: pytest --pyargs bn_conformance ...
                                          (results under ./reports/runs/<run id>/)
  bn-conformance repro CASE_ID [...]      describe, save or rerun one case (bn_conformance.repro)
  bn-conformance fingerprint SPEC [...]   measure an adapter's conventions (exit 1 on a mismatch)
  bn-conformance report CMD [...]         build | merge | publish | diff | prune (bn_conformance.reports)
  bn-conformance propose RESULTS          draft finding entries for unexplained failures

Examples:
  bn-conformance --adapter torch.nn --tier quick
  bn-conformance -n 2 --dist loadgroup
  bn-conformance report diff reports/runs/A reports/runs/B
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    cmd = args[0] if args else "run"
    if cmd in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    if cmd == "repro":
        from .repro import main as repro
        return repro(args[1:])
    if cmd == "fingerprint":
        from .fingerprint import main as fingerprint
        return fingerprint(args[1:])
    if cmd == "report":
        from .reports.__main__ import main as report
        return report(args[1:])
    if cmd == "propose":
        from .propose import main as propose
        return propose(args[1:])
    import pytest
    rest = args[1:] if cmd == "run" else args
    return int(pytest.main(["--pyargs", "bn_conformance", *rest]))


if __name__ == "__main__":
    sys.exit(main())
