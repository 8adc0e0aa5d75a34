"""benchmarks/run.py's accounting: where a run's process-seconds go, from the per-case timings
the results record (evaluate.py), on records whose sums are known by construction."""
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("bench_run", Path(__file__).resolve().parents[1] / "benchmarks" / "run.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _case(adapter, adapter_s, compiles=0, compile_s=0.0):
    t = {"inputs_s": 0.01, "reference_s": 0.02, "compare_s": 0.03, "adapter_s": adapter_s}
    if compiles:
        t |= {"compiles": compiles, "compile_s": compile_s}
    return {"type": "case", "adapter": adapter, "timings": t}


def test_summary_splits_framework_time_into_compile_first_call_and_execution():
    # "jit": 4 cases, 2 compilations of 0.5 s each, calls of 0.1 s, the first one 2.0 s more
    recs = [_case("jit", 2.6, 1, 0.5), _case("jit", 0.6, 1, 0.5), _case("jit", 0.1), _case("jit", 0.1),
            _case("eager", 0.2), _case("eager", 0.2), {"type": "run"}]
    s = bench.summarise(recs, wall_s=10.0, workers=2)
    jit = s["adapters"]["jit"]
    assert jit["cases"] == 4 and jit["compiles"] == 2
    assert jit["compile_s"] == pytest.approx(1.0) and jit["adapter_s"] == pytest.approx(3.4)
    assert jit["first_call_s"] == pytest.approx(2.0)         # largest call beyond compilation, less the median
    assert jit["execute_s"] == pytest.approx(0.4) and jit["per_case_ms"] == pytest.approx(100.0)
    assert s["framework_s"] == pytest.approx(3.8)
    assert s["suite"]["reference_s"] == pytest.approx(0.12)
    assert s["overhead_share_of_framework"] == pytest.approx(0.36 / 3.8)
    assert s["suite"]["startup_collection_io_s"] == pytest.approx(20.0 - 3.8 - 0.36)


def test_markdown_table_lists_every_adapter_heaviest_first():
    s = bench.summarise([_case("light", 0.1), _case("heavy", 5.0, 2, 4.0)], wall_s=6.0, workers=1)
    rows = bench.markdown(s).splitlines()
    assert rows[0].startswith("| adapter |") and len(rows) == 4
    assert rows[2].startswith("| `heavy` | 1 | 5.0 | 2 | 4.0 |") and rows[3].startswith("| `light` |")
