"""The HTML report: content, escaping, merging, malformed input, atomic output."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from bn_conformance import reports
from bn_conformance.reports import __main__ as cli
from bn_conformance.reports import build, model, sample
from bn_conformance.reports.model import ReportError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = sample.write_sample(tmp_path_factory.mktemp("res"), hostile=True)
    out = d / "report.html"
    reports.build_report([d], out)
    return d, out, out.read_text(encoding="utf-8")


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.in_script, self.ids, self.external = [], False, set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "script":
            self.in_script = True
            self.scripts.append("")
            if a.get("src"):
                self.external.append(a["src"])
        for k in ("src", "href"):
            v = a.get(k) or ""
            if k == "src" and v and not v.startswith("data:"):
                self.external.append(v)
        if tag == "link":
            self.external.append(a.get("href"))

    def handle_endtag(self, tag):
        if tag == "script":
            self.in_script = False

    def handle_data(self, data):
        if self.in_script:
            self.scripts[-1] += data


def test_matrix_and_sections(built):
    _, _, html = built
    assert 'id="matrix"' in html
    for fam in model.FAMILIES:
        assert f"<th>{fam}</th>" in html
    # the failing running_var case on cuda is detailed, with its numbers and a reproducer
    assert "train_f16_nchw_2x3x2x2_offset1e4_m0.1_e1e-05_k3_aff_trs_s0" in html
    assert 'class="case' in html and 'id="case-0"' in html
    assert "37.5" in html and "40.1" in html
    assert "import torch" in html and "BatchNorm2d" in html
    assert "per channel" in html and "non-finite" in html
    # the deviation, its evidence link, conventions with the "not measured" column, environment
    assert 'id="dev-torch-one-value-notrs"' in html
    assert 'href="https://github.com/pytorch/pytorch/issues/4534"' in html
    assert "not measured" in html and "unbiased" in html
    assert "Test GPU" in html and "ImportError" in html
    assert "data:image/png;base64," in html


def test_merge_two_runs_and_devices(built):
    _, _, html = built
    assert "run-cpu" in html and "run-gpu" in html
    m = model.read([built[0]])
    assert {r.rec["device"] for r in m.rows} == {"cpu", "cuda"}
    cross = model.cross_device(m, 100)
    assert cross["devices"] == ["cpu", "cuda"]
    # the case that fails on cuda only comes first, as a disagreement
    first = cross["rows"][0]
    assert first["case_id"].startswith("train_f16_nchw_2x3x2x2_offset1e4") and not first["same"]
    assert 'id="cross-table"' in html and "NO</td>" in html


def test_merge_cli_two_files(tmp_path, capsys):
    d = sample.write_sample(tmp_path / "res")
    out = tmp_path / "out" / "merged.html"
    assert cli.main(["merge", str(d / "results.cpu.jsonl"), str(d / "results.gpu.jsonl"), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    html = out.read_text()
    assert "run-cpu" in html and "run-gpu" in html and 'id="matrix"' in html


def test_escaping(built):
    _, _, html = built
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;pwn&#34;)&lt;/script&gt;" in html or "&lt;script&gt;alert(&quot;pwn&quot;)" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<em>" not in html
    p = _Scripts()
    p.feed(html)
    assert len(p.scripts) == 1, "only the report's own inline script"
    assert p.external == [], "self-contained: no external resources"
    assert "alert" not in p.scripts[0]


def test_self_contained_and_small(built):
    _, out, html = built
    assert "http://" not in re.sub(r'href="https?://[^"]*"', "", html).split("<main>")[0]
    assert not re.search(r'<(script|img|link)[^>]+(src|href)="https?:', html)
    assert out.stat().st_size < 1_000_000


def test_build_cli_writes_into_folder(tmp_path):
    d = sample.write_sample(tmp_path)
    assert cli.main(["build", str(d)]) == 0
    assert (d / "report.html").exists()
    assert cli.main(["build", str(d / "nope")]) == 2


def test_module_entry_point():
    p = subprocess.run([sys.executable, "-m", "reports", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0 and "merge" in p.stdout and "build" in p.stdout


def _cli_merge(tmp_path, *files):
    out = tmp_path / "r.html"
    rc = cli.main(["merge", *map(str, files), "-o", str(out)])
    return rc, out


def test_truncated_input_names_file(tmp_path, capsys):
    cpu, _ = sample.records()
    f = tmp_path / "results.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in cpu)
    f.write_text(text[:-40])      # a run interrupted mid-line
    with pytest.raises(ReportError, match=re.escape(str(f)) + r":\d+: truncated"):
        reports.build_report([f], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()
    rc, out = _cli_merge(tmp_path, f)
    err = capsys.readouterr().err
    assert rc == 2 and str(f) in err and "truncated" in err and not out.exists()


def test_malformed_input_names_file(tmp_path, capsys):
    cpu, _ = sample.records()
    f = tmp_path / "bad.jsonl"
    lines = [json.dumps(r) for r in cpu]
    lines[3] = "{not json"
    f.write_text("\n".join(lines) + "\n")
    rc, out = _cli_merge(tmp_path, f)
    assert rc == 2 and f"{f}:4: not JSON" in capsys.readouterr().err and not out.exists()
    g = tmp_path / "nocase.jsonl"
    rec = dict(cpu[1])
    del rec["verdict"]
    g.write_text(json.dumps(cpu[0]) + "\n" + json.dumps(rec) + "\n")
    with pytest.raises(ReportError, match=re.escape(str(g)) + ".*lacks 'verdict'"):
        reports.build_report([g], tmp_path / "r.html")
    with pytest.raises(ReportError, match="no such file"):
        reports.build_report([tmp_path / "missing.jsonl"], tmp_path / "r.html")


def test_other_schema_version_says_why(tmp_path):
    cpu, gpu = sample.records()
    gpu[0] = dict(gpu[0], schema_version=2)
    a, b = sample.write(tmp_path / "a.jsonl", cpu), sample.write(tmp_path / "b.jsonl", gpu)
    with pytest.raises(ReportError) as ei:
        reports.build_report([a, b], tmp_path / "r.html")
    msg = str(ei.value)
    assert str(b) in msg and "version 2" in msg and "version 1 only" in msg and str(a) in msg
    assert not (tmp_path / "r.html").exists()


def test_atomic_output(tmp_path, monkeypatch):
    d = sample.write_sample(tmp_path / "res")
    out = tmp_path / "report.html"
    out.write_text("OLD REPORT")

    def boom(text):
        raise RuntimeError("render crashed halfway")

    real_open = build.os.fdopen

    class Half:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            raise OSError("disk full")

    monkeypatch.setattr(build.os, "fdopen", lambda fd, *a, **k: Half(real_open(fd, *a, **k)))
    with pytest.raises(OSError, match="disk full"):
        reports.build_report([d], out)
    assert out.read_text() == "OLD REPORT"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []
    monkeypatch.undo()
    reports.build_report([d], out)
    assert out.read_text().startswith("<!DOCTYPE html>") and out.read_text().rstrip().endswith("</html>")


def test_real_evaluate_records(tmp_path):
    """Records from bn_conformance.evaluate (a raising and a silent adapter) render, with the error escaped."""
    from bn_conformance.case import parse
    from bn_conformance.evaluate import evaluate
    from bn_conformance.results import run_header

    class Raising:
        name, framework, convention = "fake.<raise>", "fake", "pytorch"

        def version(self):
            return "1.0"

        def devices(self):
            return ["cpu"]

        def supports(self, pb, device):
            return None

        def run(self, pb, device):
            raise ValueError("bad <input> & \"stuff\"")

    class Silent(Raising):
        name = "fake.silent"

        def run(self, pb, device):
            return {"y": np.zeros((pb.steps,) + pb.shape)}

    c = parse("train_f32_nchw_2x3x2x2_normal_m0.1_e1e-05_k2_aff_trs_s0")
    hdr = run_header("r1", {a.name: {"name": a.name, "framework": "fake", "version": "1.0", "convention": "pytorch",
                                     "devices": ["cpu"]} for a in (Raising(), Silent())}, {}, {}, {"cpu": "x"})
    recs = [hdr] + [evaluate(a, "cpu", c).record("r1") for a in (Raising(), Silent())]
    f = sample.write(tmp_path / "results.jsonl", recs)
    html = reports.build_report([f], tmp_path / "r.html").read_text()
    assert "bad &lt;input&gt; &amp; &#34;stuff&#34;" in html and "<input>" not in html
    assert "required output not returned" in html
    assert "fake.silent" in html and "no snippet template" in html   # the generic reproducer


def test_snippet_runs_standalone(tmp_path):
    """The torch reproducer runs with torch alone and reproduces the suite's numbers."""
    torch = pytest.importorskip("torch")
    from bn_conformance.reports import repro
    cid = "train_f32_nchw_2x3x2x2_normal_m0.1_e1e-05_k3_aff_trs_s0"
    rec = {"case_id": cid, "adapter": "torch.nn", "device": "cpu", "framework": "torch", "version": torch.__version__}
    lang, code = repro.snippet(rec, sample.check("running_var", "running", "fail", 2.0, worst_index=[2, 1],
                                                 expected=1.0, tolerance=1e-6))
    assert lang == "python" and "conformance" not in code.split("\n", 2)[2]
    # run it in a namespace of its own where importing the suite's packages fails
    import builtins
    import contextlib
    import io
    real_import = builtins.__import__

    def guard(name, *a, **k):
        if name.split(".")[0] in ("conformance", "reference", "adapters", "reports"):
            raise ImportError(f"the snippet imported {name}")
        return real_import(name, *a, **k)

    ns = {"__name__": "__snippet__", "__builtins__": dict(vars(builtins), __import__=guard)}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "snippet.py", "exec"), ns)
    assert "running_var [2, 1] framework:" in buf.getvalue()
    assert tuple(ns["out"]["running_var"].shape) == (3, 3)
