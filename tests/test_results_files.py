"""Malformed, empty, cut and hostile results files: every one is an error naming FILE:LINE
(exit status 2, no traceback) or is read with exactly the damaged record left out; no
command overwrites one of its inputs; nothing in a file becomes code or markup.

The files are mutations of a real run's results (one suite run with an honest and a
planted-bug backend), read through ``python -m bn_conformance.reports``."""
from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bn_conformance.results import ResultsError, load

ROOT = Path(__file__).resolve().parents[1]
PLANTED = ROOT / "tests" / "planted" / "backends.py"
CASES = ["train_f32_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0", "infer_f32_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run") / "r"
    cmd = [sys.executable, "-m", "pytest", "conformance/", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
           "--no-report", "--results-dir", str(folder), "--adapter", f"{PLANTED}:NumpyBN",
           "--adapter", f"{PLANTED}:Planted_eps_outside_sqrt", *[a for c in CASES for a in ("--case", c)]]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:]          # the planted bug fails
    return folder


@pytest.fixture(scope="module")
def records(run_dir) -> list[dict]:
    recs = load(run_dir)
    assert [r["type"] for r in recs][0] == "run" and recs[-1]["type"] == "end"
    assert sum(r["type"] == "case" for r in recs) == 4
    return recs


def reports(*argv) -> tuple[int, str, str]:
    """``python -m bn_conformance.reports ARGV`` in this process (its main()); exceptions
    propagate, so a traceback fails the test."""
    from bn_conformance.reports.__main__ import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:          # argparse
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def write(path: Path, recs: list, raw_lines: dict | None = None) -> Path:
    """Records as JSON Lines; ``raw_lines`` {index: text} replaces lines verbatim."""
    lines = [json.dumps(r) for r in recs]
    for i, text in (raw_lines or {}).items():
        lines[i] = text
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _header(recs):
    return copy.deepcopy(recs[0])


def _case(recs, verdict=None):
    return copy.deepcopy(next(r for r in recs if r["type"] == "case" and (verdict is None or r["verdict"] == verdict)))


def _deep(n):
    d = x = {}
    for _ in range(n):
        x["a"] = {}
        x = x["a"]
    return d


# name -> (records, raw line replacements) builder; the error must name this line (1-based)
def _malformed(recs):
    h, c = _header(recs), _case(recs)
    out = {}

    def add(name, line, build, raw=None):
        out[name] = (line, build, raw or {})

    h1 = _header(recs); del h1["run_id"]
    add("header without run_id", 1, [h1, c])
    h2 = _header(recs); del h2["platform"]
    add("header without platform", 1, [h2, c])
    h3 = _header(recs); h3["adapters"] = ["numpy.clean"]
    add("adapters of the wrong type", 1, [h3, c])
    c1 = _case(recs); c1["checks"] = "y fail"
    add("checks of the wrong type", 2, [h, c1])
    c2 = _case(recs); c2["verdict"] = "passed"
    add("unknown verdict", 2, [h, c2])
    c3 = _case(recs); c3["timings"] = {"adapter_s": "fast"}
    add("timings of the wrong type", 2, [h, c3])
    c4 = _case(recs); del c4["run_id"]
    add("case without run_id", 2, [h, c4])
    add("orphan fingerprint", 3, [h, c, {"type": "fingerprint", "run_id": "another-run", "adapter": "numpy.clean",
                                          "device": "cpu", "fields": {}}])
    add("orphan end record", 3, [h, c, {"type": "end", "run_id": "another-run", "status": "complete"}])
    add("record before its header", 1, [c, h])
    add("deep nesting", 2, [h, c], {1: "[" * 200000 + "]" * 200000})
    c5 = _case(recs); c5["inputs"] = "DEEP"
    add("deep nesting inside a record", 2, [h, c5],
        {1: json.dumps(c5).replace('"DEEP"', '{"a": ' * 5000 + "{}" + "}" * 5000)})
    add("NaN literal", 2, [h, c], {1: json.dumps(c).replace('"timings": {', '"timings": {"x": NaN, ', 1)})
    add("Infinity literal", 2, [h, c], {1: json.dumps(c).replace('"timings": {', '"timings": {"x": -Infinity, ', 1)})
    add("1e999", 2, [h, c], {1: json.dumps(c).replace('"timings": {', '"timings": {"x": 1e999, ', 1)})
    add("not an object", 2, [h, c], {1: "[1, 2, 3]"})
    add("unknown record type", 2, [h, {"type": "exploit", "run_id": h["run_id"]}])
    c6 = _case(recs); c6["adapter"] = "numpy.clean\n__import__('os').system('touch PWNED')"
    add("line break in an adapter name", 2, [h, c6])
    c7 = _case(recs); c7["device"] = "cpu\r<script>"
    add("carriage return in a device", 2, [h, c7])
    c8 = _case(recs); c8["version"] = "1.0\u2028x"
    add("line separator in a version", 2, [h, c8])
    add("not JSON", 2, [h, c], {1: "{'type': 'case'}"})
    add("cut last line of a merged file", 3, [h, c, c], {2: json.dumps(c)[:70]})
    return out


MALFORMED = list(_malformed([{"type": "run", "run_id": "r", "platform": {}, "adapters": {}},
                             {"type": "case", "run_id": "r", "verdict": "pass", "timings": {}}]))


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_file_is_an_error_naming_file_and_line(name, records, tmp_path):
    line, recs, raw = _malformed(records)[name]
    path = write(tmp_path / "results.jsonl", recs, raw)
    if name == "cut last line of a merged file":
        path.write_text(path.read_text().rstrip("\n"))
    before = path.read_bytes()
    rc, _, err = reports("merge", path, "-o", tmp_path / "out.html")
    assert rc == 2 and err.startswith(f"error: {path}:{line}: "), (name, err[:500])
    assert not (tmp_path / "out.html").exists() and path.read_bytes() == before


def test_deep_nesting_is_refused_whatever_the_recursion_limit(records, tmp_path):
    """Imported libraries raise the recursion limit (then json.loads parses 5000 levels): the
    refusal must not depend on it."""
    line, recs, raw = _malformed(records)["deep nesting inside a record"]
    path = write(tmp_path / "results.jsonl", recs, raw)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        rc, _, err = reports("merge", path, "-o", tmp_path / "out.html")
    finally:
        sys.setrecursionlimit(limit)
    assert rc == 2 and err.startswith(f"error: {path}:{line}: nested too deeply"), err[:500]


def test_line_numbers_count_blank_lines(records, tmp_path):
    h, c = _header(records), _case(records)
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join([json.dumps(h), "", "", json.dumps(c), "",
                               json.dumps({"type": "end", "run_id": "elsewhere", "status": "complete"})]) + "\n")
    with pytest.raises(ResultsError, match=rf"^{path}:6: end record of run 'elsewhere'"):
        load(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank"])
def test_empty_input_is_an_error(content, tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(content)
    rc, _, err = reports("merge", path, "-o", tmp_path / "out.html")
    assert rc == 2 and "holds no records" in err and not (tmp_path / "out.html").exists()
    empty = tmp_path / "folder"
    empty.mkdir()
    rc, _, err = reports("merge", empty, "-o", tmp_path / "out.html")
    assert rc == 2 and "no results" in err


def test_unreadable_bytes_are_an_error(records, tmp_path):
    for name, data in (("results.jsonl", b"\xff\xfe\x00\x01 not text"), ("results.jsonl.gz", b"not gzip"),
                       ("bom.jsonl", b"\xef\xbb\xbf" + json.dumps(records[0]).encode() + b"\n")):
        path = tmp_path / name
        path.write_bytes(data)
        rc, _, err = reports("merge", path, "-o", tmp_path / "out.html")
        assert rc == 2 and err.startswith(f"error: {path}"), (name, err)


def test_a_command_never_overwrites_its_input(run_dir, records, tmp_path):
    """merge/publish/diff -o onto an input file (or into an input folder's results) is refused
    and the input stays byte for byte."""
    merged = run_dir / "results.jsonl"
    before = merged.read_bytes()
    alias = tmp_path / "alias.jsonl"
    alias.symlink_to(merged)
    for argv in (("merge", merged, "-o", merged), ("merge", run_dir, "-o", merged),
                 ("merge", run_dir, alias, "-o", alias),
                 ("merge", run_dir, "-o", run_dir / "results.gw0.jsonl"), ("publish", run_dir, "-o", run_dir),
                 ("diff", merged, merged, "-o", merged), ("diff", run_dir, run_dir, "-o", merged)):
        rc, _, err = reports(*argv)
        assert rc == 2 and "would overwrite an input" in err, (argv, err)
        assert merged.read_bytes() == before
    assert not (run_dir / "results.gw0.jsonl").exists() and not (run_dir / "results.jsonl.gz").exists()


def test_a_cut_record_costs_only_that_record(records, tmp_path):
    """An interrupted run's part files (two workers, no end record): a record cut by the
    interruption and a garbled line are skipped with FILE:LINE warnings; every other record is
    read, and the report says the run did not finish."""
    h = _header(records)
    cases = [r for r in records if r["type"] == "case"]
    folder = tmp_path / "run"
    folder.mkdir()
    main = folder / "results.main.jsonl"
    main.write_text(json.dumps(h) + "\n" + json.dumps(cases[0]) + "\n" + "{garbled\n" + json.dumps(cases[1]) + "\n")
    gw = folder / "results.gw0.jsonl"
    gw.write_text(json.dumps(h) + "\n" + json.dumps(cases[2]) + "\n" + json.dumps(cases[3])[:100])
    warnings: list = []
    got = load(folder, warnings=warnings)
    assert sorted(r["case_id"] + r["adapter"] for r in got if r["type"] == "case") == \
        sorted(c["case_id"] + c["adapter"] for c in cases[:3])
    assert any(w.startswith(f"{main}:3: ") for w in warnings) and any(w.startswith(f"{gw}:3: ") for w in warnings), \
        warnings
    out = tmp_path / "report.html"
    rc, _, err = reports("merge", folder, "-o", out)
    assert rc == 0, err
    html = out.read_text(encoding="utf-8")
    assert "interrupted" in html


def test_report_of_an_interrupted_run_says_so(records, tmp_path):
    """The end record says "interrupted": the report says so too (it does not look complete)."""
    recs = [r for r in records if r["type"] != "end"] + [records[-1] | {"status": "interrupted"}]
    path = write(tmp_path / "results.jsonl", recs)
    rc, _, err = reports("merge", path, "-o", tmp_path / "out.html")
    assert rc == 0, err
    assert "interrupted" in (tmp_path / "out.html").read_text(encoding="utf-8")


def test_odd_but_valid_values_are_shown_as_text(records, tmp_path):
    """Values the schema leaves open (adapter entries, conventions, inputs, findings, case ids
    that name no case, markup and code in texts) never crash the report and are escaped."""
    h = _header(records)
    odd = {"version": 5, "devices": "cpu", "convention": ["x"], "capabilities": "grad"}
    h["adapters"] = {"odd": odd} | h["adapters"]
    h["conventions"] = {"pytorch": {"sources": "nowhere", "title": 5}}
    h["unavailable"] = {"<script>alert(1)</script>": "<b>why</b>"}
    c = _case(records, "fail")
    c["case_id"] = "not a case <script>alert(2)</script>"
    c["inputs"] = {"shape": 5, "mean_range": "x", "nested": _deep(50)}
    c["findings"] = [{"id": "no-such-finding", "triggered": True}]
    c["error"] = "Traceback\n<script>alert(3)</script>"
    c["output"] = "<img src=x onerror=alert(4)>"
    c["repro"] = {"lang": "<b>", "code": "pytest conformance/ --case=x\n<script>alert(5)</script>"}
    big = _case(records, "fail")
    big["case_id"] = "train_f32_nc_99999x99999_normal_m0.1_e1e-05_k1_aff_trs_s0"
    path = write(tmp_path / "results.jsonl", [h, c, big, records[-1]])
    rc, _, err = reports("merge", path, "-o", tmp_path / "out.html")
    assert rc == 0, err
    html = (tmp_path / "out.html").read_text(encoding="utf-8")
    for n in range(1, 6):
        assert f"<script>alert({n})</script>" not in html
    assert "<img src=x" not in html


def test_the_command_line_reports_errors_without_traceback(records, tmp_path):
    """The same through ``python -m bn_conformance.reports``: exit 2, one error line."""
    h = _header(records)
    del h["platform"]
    path = write(tmp_path / "results.jsonl", [h])
    for argv in (["merge", str(path), "-o", str(tmp_path / "o.html")], ["merge", str(tmp_path / "absent.jsonl"), "-o",
                                                                      str(tmp_path / "o.html")],
                 ["build", str(tmp_path)]):
        proc = subprocess.run([sys.executable, "-m", "bn_conformance.reports", *argv], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr, \
            (argv, proc.stderr[-2000:])


def test_written_records_always_load(run_dir, records):
    """What the suite writes reads back whole, gzipped too (``load`` refuses NaN/Infinity
    literals, so non-finite numbers must have been written as strings)."""
    text = (run_dir / "results.jsonl").read_text(encoding="utf-8")
    gz = gzip.compress(text.encode())
    path = run_dir.parent / "copy.jsonl.gz"
    path.write_bytes(gz)
    assert load(path) == records


def test_runs_of_broken_adapters_never_touch_earlier_results(run_dir, tmp_path):
    """Under a results root with a finished run that ``latest`` names: a run whose adapter
    cannot load (version() raises) and one whose supports() raises leave that run and
    ``latest`` as they were; each new run has a folder of its own."""
    import shutil
    root = tmp_path / "root"
    (root / "runs").mkdir(parents=True)
    old = root / "runs" / "20000101T000000-aaaaaa"
    shutil.copytree(run_dir, old)
    (root / "latest").symlink_to(Path("runs") / old.name)
    before = {p: p.read_bytes() for p in old.rglob("*") if p.is_file()}
    hostile = ROOT / "tests" / "planted" / "hostile.py"
    for cls in ("VersionRaises", "SupportsRaises"):
        cmd = [sys.executable, "-m", "pytest", "conformance/", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
               "--no-report", "--results-root", str(root), "--adapter", f"{hostile}:{cls}", "--case", CASES[0]]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1 and "INTERNALERROR" not in proc.stdout, proc.stdout[-3000:]
    assert (root / "latest").resolve() == old.resolve()
    assert {p: p.read_bytes() for p in old.rglob("*") if p.is_file()} == before
    new = sorted((p for p in (root / "runs").iterdir() if p != old), key=lambda p: p.stat().st_mtime_ns)
    assert len(new) == 2                                   # each run a folder of its own
    header = load(new[0])[0]                               # version() raising: the header says why
    assert header["type"] == "run" and "VersionRaises" in json.dumps(header) or \
        "version_raises" in json.dumps(header), json.dumps(header)[:2000]
    (rec,) = [r for r in load(new[1]) if r["type"] == "case"]   # supports() raising: its record
    assert rec["verdict"] == "raised" and rec["adapter"] == "hostile.supports_raises"
