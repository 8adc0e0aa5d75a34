"""Run cases on one adapter with the suite's own evaluate(), findings NOT attributed,
and print every check (verdict, ratio). Usage:
  python run_case.py ADAPTER CASE_ID [CASE_ID ...]
ADAPTER: a built-in name (torch.nn) or a spec (examples/tinygrad_adapter.py:TinygradBatchNorm).
Run from the repository root in an environment where bn_conformance is installed."""
import sys

from bn_conformance.adapters.loading import from_spec, instantiate
from bn_conformance.case import parse
from bn_conformance.evaluate import evaluate


def main():
    name, ids = sys.argv[1], sys.argv[2:]
    ad = from_spec(name)[0] if ":" in name else instantiate(name)
    for cid in ids:
        res = evaluate(ad, "cpu", parse(cid), attribute_findings=False)
        bad = [c for c in res.checks if c.verdict not in ("pass",)]
        print(f"{res.adapter} {cid}: {res.verdict}" + (f" ({res.skip_reason[:100]})" if res.skip_reason else ""))
        for c in res.checks:
            r = f"{c.ratio:.3g}" if isinstance(c.ratio, (int, float)) else c.ratio
            mark = "  " if c.verdict == "pass" else "!!"
            print(f"  {mark} {c.name:16s} {c.verdict:8s} ratio={r} {(c.detail or '')[:160] if c.verdict != 'pass' else ''}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
