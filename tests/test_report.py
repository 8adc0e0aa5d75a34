"""The HTML report: the first screen (run summary, framework profile cards), the sections
below it, escaping of every string from results, schema v1 compatibility, building from the
results files alone, merging, malformed input, size caps and atomic output."""
from __future__ import annotations

import gzip
import json
import re
import shutil
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


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    d = sample.write_sample(tmp_path_factory.mktemp("plain"))
    out = reports.build_report([d], d / "report.html")
    return d, out.read_text(encoding="utf-8")


def cards(html: str) -> dict[str, str]:
    """framework -> the HTML of its profile card (data-framework is the escaped framework name)."""
    out = {}
    for m in re.finditer(r'<article class="card[^"]*" id="fw-\d+" data-framework="([^"]*)">(.*?)</article>', html, re.S):
        out[m.group(1)] = m.group(2)
    return out


def first_screen(html: str) -> str:
    return html[html.index('<section id="summary"'):html.index('<h2 id="overview">')]


class _Tags(HTMLParser):
    """Every tag and attribute of a page, and the text of its scripts."""

    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.scripts, self.in_script, self.ids, self.external = set(), [], [], False, set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "script":
            self.in_script = True
            self.scripts.append("")
            if a.get("src"):
                self.external.append(a["src"])
        if tag in ("img", "iframe", "embed", "object", "link", "source") and (a.get("src") or a.get("href")):
            v = a.get("src") or a.get("href")
            if not v.startswith("data:"):
                self.external.append(v)

    def handle_endtag(self, tag):
        if tag == "script":
            self.in_script = False

    def handle_data(self, data):
        if self.in_script:
            self.scripts[-1] += data


# -- the first screen ---------------------------------------------------------------------------

def test_summary_and_banners(plain):
    _, html = plain
    top = first_screen(html)
    # status: one run has no end record (interrupted), one ran a subset (partial)
    assert 'class="banner interrupted"' in top and "INTERRUPTED" in top and "run-ort" in top
    assert "no end record" in top
    assert 'class="banner partial"' in top and "PARTIAL" in top and "run-gpu" in top and "--adapter torch.*" in top
    assert '<span class="status s-interrupted">INTERRUPTED</span>' in top
    assert "3 runs on 2 machines" in top and "devices cpu, cuda" in top and "7 frameworks" in top
    assert "failing case results no finding explains" in top
    assert "no longer reproduce" in top                                      # the stale finding
    assert "could not be read" in top and 'href="#warnings"' in top         # the cut line of results.ort.jsonl
    # the cards come first, before the matrix
    assert html.index('class="card') < html.index('id="matrix"') < html.index('id="case-0"')


def test_one_card_per_framework(plain):
    _, html = plain
    cs = cards(html)
    assert set(cs) == {"torch", "tensorflow", "keras", "flax", "dm-haiku", "mybackend", "onnxruntime"}
    # frameworks with failures nothing explains come first
    order = re.findall(r'data-framework="([^"]*)"', first_screen(html))
    assert set(order[:4]) == {"torch", "tensorflow", "mybackend", "onnxruntime"}
    assert "examples/mybackend.py:BatchNorm" in cs["mybackend"]          # an external adapter, with its origin


def test_torch_card(plain):
    _, html = plain
    c = cards(html)["torch"]
    assert "2.4.0" in c and "torch.nn" in c and "torch.functional" in c and "cpu, cuda" in c
    # findings, one line each, by severity: medium first, then the low ones
    titles = re.findall(r'class="ftitle" href="#finding-\d+">([^<]*)</a>', c)
    assert titles[0].startswith("16-bit inputs without weight") and len(titles) == 3
    line = c[c.index("16-bit inputs without weight"):c.index("One value per channel")]
    assert '<span class="sev sev-medium">medium</span>' in c
    assert "y, dx, y_eval" in line and "dx, y" in line                   # checks named, checks that failed
    assert "<b>4</b> / 4 matched" in line                                 # cases triggered / matched
    assert "256×" in line                                                 # worst ratio
    assert "train_bf16_ncl_4x4x5_offset1e1_m0.1_e1e-05_k1_noaff_notrs_s5" in line
    assert "pytest conformance/ --case=train_bf16_ncl_4x4x5" in line       # its rerun line
    assert 'href="https://github.com/pytorch/pytorch/issues/124524"' in line
    # the stale finding is flagged
    stale = c[c.index("One value per channel"):]
    assert "no longer reproduces" in stale[:1500] and "<b>0</b> / 2 matched" in stale
    # the failure no finding explains, with its rerun line
    box = c[c.index("unexplained-box"):c.index("Findings <span")]
    assert "torch.nn@cuda" in box and "running_var" in box and "37.5×" in box
    assert "pytest conformance/ --case=train_f16_nchw_2x3x2x2_offset1e4" in box and 'href="#case-' in box
    # measured conventions, what conforms
    assert "channel_axis" in c and "unbiased" in c and 'class="ok"' in c
    assert '<span class="fam conforms"' in c and '<span class="fam fails"' in c and "No failing or explained check in:" in c


def test_conventions_on_cards(plain):
    _, html = plain
    cs = cards(html)
    flax = cs["flax"]      # a mismatch a finding explains
    assert 'class="mm"' in flax and "unstable (one-pass-like)" in flax and "finding" in flax
    assert re.search(r'— finding <a class="mono" href="#finding-\d+" title="[^"]+">flax-fast-variance</a>', flax)
    mine = cs["mybackend"]  # a mismatch nothing explains
    assert 'class="mm"' in mine and "no finding explains it" in mine
    assert "pill bad" in mine
    ort = cs["onnxruntime"]
    assert "Failures no finding explains" in ort and "2.50e+08×" in ort
    keras = cs["keras"]
    assert "float64 layers compute their statistics in float32" in keras and '<span class="sev sev-high">high</span>' in keras
    assert "conforms apart from 1 finding" in keras


def test_matrix_attention_and_sections(plain):
    _, html = plain
    assert 'id="matrix"' in html
    for fam in model.FAMILIES:
        assert f"<th>{fam}</th>" in html
    # attention table: finding ids (with their titles on hover) instead of deviation ids
    table = html[html.index('id="attention-table"'):html.index("</table>", html.index('id="attention-table"'))]
    assert "<th>findings</th>" in table
    assert re.search(r'<a class="mono" href="#finding-\d+" title="float64 layers compute their statistics in float32">'
                     r'keras3-float64-computed-in-float32</a>', table)
    # a case section: stored repro commands, input summary, findings covering it
    secs = re.findall(r'<section class="case[^"]*" id="case-\d+".*?</section>', html, re.S)
    sec = next(x for x in secs if "train_f16_nchw_2x3x2x2_offset1e4" in x and "torch.nn (torch" in x and "cuda" in x)
    assert "37.5" in sec and "40.1" in sec
    assert '<pre class="cmd">pytest conformance/ --case=' in sec and "python -m bn_conformance.repro" in sec
    assert "--save=" in sec
    assert "mean in [" in sec and "non-finite of" in sec and "normal, mean 10000 x its spread" in sec
    assert "momentum 0.1, eps 1e-05, affine, tracking running statistics" in sec
    # the adapter's output is shown where it printed something
    assert "falling back to the reference kernel" in html and '<pre class="out">' in html
    # every example a card names has a section
    for href in re.findall(r'href="#(case-\d+)"', first_screen(html)):
        assert f'id="{href}"' in html


def test_findings_table_and_environment(plain):
    _, html = plain
    ft = html[html.index('<h2 id="findings">'):html.index('<h2 id="environment">')]
    assert "dtype in {float16, bfloat16} and affine = false and track = false" in ft
    assert "offset &gt;= 1e3 or (dtype in {float16, bfloat16} and offset &gt;= 1e2)" in ft
    assert "eps = 0.0 and mode in {train, frozen}" in ft
    assert "NaN/Inf-pattern failures only" in ft and "error/tolerance at most 1000" in ft
    assert "one-pass formula" in ft and 'href="https://github.com/google/flax/pull/3566"' in ft
    assert "triggered 4 / matched 4 cases" in ft
    env = html[html.index('<h2 id="environment">'):]
    assert "XLA_FLAGS=--xla_cpu_max_isa=AVX2 &lt;b&gt;x&lt;/b&gt;" in env and "OMP_NUM_THREADS=2" in env
    assert "no end record" in env and "wall_s 412.6" in env
    assert 'partial <span class="mono">yes</span>' in env and 'adapters <span class="mono">torch.*</span>' in env
    assert "Other CPU" in env and "ImportError" in env
    warn = html[html.index('<h2 id="warnings">'):]
    assert "results.ort.jsonl" in warn and "truncated last line" in warn


def test_describe_when():
    d = model.describe_when
    assert d([]) == "every case" and d(None) == "every case"
    assert d([{"dtype": ["float16", "bfloat16"], "not_layout": "nchw"}]) == "dtype in {float16, bfloat16} and layout ≠ nchw"
    assert d([{"offset": ">= 1e3"}, {"N": 0}]) == "offset >= 1e3 or N = 0"
    assert d([{"not_flags": ["nonfinite"], "eps": "< 1e-3"}]) == "flags not in {nonfinite} and eps < 1e-3"
    assert d({"affine": True}) == "affine = true"
    assert d(["<b>odd</b>"]) == "<b>odd</b>"            # data, escaped by the template


# -- escaping -----------------------------------------------------------------------------------

def test_escaping(built):
    _, _, html = built
    for raw in ("<script>alert", "<img src=x", "<svg onload", "<iframe", "<b>bold</b>", "<b>wrong</b>", "<em>",
                "<i>finding</i>", "<evil>", "<b>dtype</b>", "<b>x</b>"):
        assert raw not in html, raw
    # the hostile strings are there, as text
    assert "&lt;img src=x onerror=alert(&#39;title&#39;)&gt; silently &lt;b&gt;wrong&lt;/b&gt;" in html
    assert "&lt;script&gt;alert(&#34;pwn&#34;)&lt;/script&gt;" in html          # adapter name
    assert "2.0&lt;script&gt;alert(&#39;version&#39;)&lt;/script&gt;" in html    # version
    assert "evil&lt;svg onload=alert(&#39;fw&#39;)&gt;" in html                 # framework (a card of its own)
    assert "&lt;script&gt;alert(&#39;err&#39;)&lt;/script&gt; &#34;quoted&#34; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;iframe src=&#34;https://evil.example/&#34;&gt;&lt;/iframe&gt; printed by the adapter" in html
    assert "reason &lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;" in html
    assert "hostile-&lt;i&gt;finding&lt;/i&gt;&#34;&#39;" in html
    assert "&lt;b&gt;y&lt;/b&gt;, y" in html and "&lt;b&gt;dtype&lt;/b&gt; = &lt;i&gt;float32&lt;/i&gt;" in html
    p = _Tags()
    p.feed(html)
    assert len(p.scripts) == 1, "only the report's own inline script"
    assert p.external == [], "self-contained: no external resources"
    assert "alert" not in p.scripts[0]
    assert p.tags <= {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "h4", "div", "nav",
                      "a", "main", "section", "span", "b", "article", "ul", "ol", "li", "code", "table", "thead",
                      "tbody", "tr", "th", "td", "details", "summary", "pre", "p", "br", "figure", "img",
                      "figcaption", "input", "label", "select", "option", "script"}, p.tags
    for tag, k, v in p.attrs:
        assert not k.startswith("on"), (tag, k, v)
        if k == "href":
            assert v.startswith("#") or re.match(r"https?://[^\s\"'<>]+$", v), v
        if k == "src":
            assert v.startswith("data:image/png;base64,"), v
    # a URL in hostile evidence becomes a link only up to the quote; javascript: never one
    assert 'href="https://example.org/issue"' in html
    assert not any(v.lower().startswith("javascript") for _, k, v in p.attrs if k == "href")
    # the hostile framework got a card; its id is escaped in the attribute
    assert any(f.startswith("evil&lt;svg") for f in cards(html))


def test_self_contained_and_small(built):
    _, out, html = built
    assert not re.search(r'<(script|img|link|iframe)[^>]+(src|href)="https?:', html)
    assert 'http-equiv="Content-Security-Policy"' in html and "default-src 'none'" in html
    assert out.stat().st_size < 1_500_000


# -- v1 results and mixed inputs ------------------------------------------------------------------

def test_v1_results_still_render(tmp_path):
    d = sample.write_sample(tmp_path / "v1", hostile=True, version=1)
    html = reports.build_report([d], tmp_path / "r.html").read_text()
    c = cards(html)
    assert "torch" in c
    assert "torch-one-value-notrs" in c["torch"] and "sev-v1" in c["torch"]
    # a v1 id expanded per adapter and check groups under its first part
    assert "torch-16bit-no-params" in c["torch"] and "1 deviation id" in c["torch"]
    assert "no text recorded" in html
    assert "No reproduction commands recorded" in html and "not recorded" in html
    assert '<pre class="cmd">' not in html
    assert 'id="matrix"' in html and "37.5" in html
    assert "<script>alert" not in html
    assert "deviation ids matched (schema v1 results: no finding texts)" in html


def test_v1_and_v2_in_one_report(tmp_path):
    a = sample.write_sample(tmp_path / "v1", version=1)
    cpu, _, _ = sample.records_v2()
    b = sample.write(tmp_path / "v2" / "results.jsonl", [dict(r, run_id="run-v2") for r in cpu])
    html = reports.build_report([a / "results.cpu.jsonl", b], tmp_path / "r.html").read_text()
    assert "run-v2" in html and "run-cpu" in html
    assert "16-bit inputs without weight" in html and "torch-one-value-notrs" in html


def test_other_schema_version_says_why(tmp_path):
    cpu, gpu = sample.records()
    gpu[0] = dict(gpu[0], schema_version=3)
    a, b = sample.write(tmp_path / "a.jsonl", cpu), sample.write(tmp_path / "b.jsonl", gpu)
    with pytest.raises(ReportError) as ei:
        reports.build_report([a, b], tmp_path / "r.html")
    msg = str(ei.value)
    assert str(b) in msg and "version 3" in msg and "versions 1 and 2 only" in msg and str(a) in msg
    assert not (tmp_path / "r.html").exists()


# -- built from the results alone -----------------------------------------------------------------

_NO_CHECKOUT = r"""
import importlib.abc, json, runpy, sys
BANNED = ("bn_conformance.findings", "bn_conformance.deviations", "bn_conformance.inputs", "bn_conformance.repro",
          "bn_conformance.distributions", "bn_conformance.evaluate", "bn_conformance.reports.repro",
          "bn_conformance.reference", "bn_conformance.adapters")

class Ban(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in BANNED or name.startswith(tuple(b + "." for b in BANNED)):
            raise ImportError("the report imported " + name)
        return None

sys.meta_path.insert(0, Ban())
sys.argv = ["bn_conformance.reports", "merge", "results", "-o", "report.html"]
try:
    runpy.run_module("bn_conformance.reports", run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(m for m in sys.modules if m.startswith("bn_conformance"))}))
"""


def test_built_from_results_alone(tmp_path):
    """Results copied to a folder with no checkout: `python -m bn_conformance.reports merge` (cwd
    there) builds the report without the findings files, the input generators or the adapters."""
    src = sample.write_sample(tmp_path / "src")
    work = tmp_path / "elsewhere"
    shutil.copytree(src, work / "results")
    p = subprocess.run([sys.executable, "-c", _NO_CHECKOUT], cwd=work, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["code"] == 0, p.stdout + p.stderr[-3000:]
    banned = [m for m in res["modules"] if m.split(".")[1:2] in (["findings"], ["deviations"], ["inputs"], ["repro"],
                                                                   ["evaluate"], ["distributions"], ["reference"],
                                                                   ["adapters"]) or m.endswith("reports.repro")]
    assert banned == [], banned
    assert "bn_conformance.reports.build" in res["modules"]
    html = (work / "report.html").read_text()
    assert "16-bit inputs without weight" in html and "pytest conformance/ --case=" in html
    assert not (ROOT / "reports" / "repro.py").exists()


# -- inputs, CLI and robustness -------------------------------------------------------------------

def test_merge_two_runs_and_devices(built):
    _, _, html = built
    assert "run-cpu" in html and "run-gpu" in html
    m = model.read([built[0]])
    assert {r.rec["device"] for r in m.rows} == {"cpu", "cuda"}
    cross = model.cross_device(m, 100)
    assert cross["devices"] == ["cpu", "cuda"]
    first = cross["rows"][0]      # the case that fails on cuda only comes first, as a disagreement
    assert first["case_id"].startswith("train_f16_nchw_2x3x2x2_offset1e4") and not first["same"]
    assert 'id="cross-table"' in html and "NO</td>" in html


def test_merge_cli_two_files(tmp_path, capsys):
    d = sample.write_sample(tmp_path / "res")
    out = tmp_path / "out" / "merged.html"
    assert cli.main(["merge", str(d / "results.cpu.jsonl"), str(d / "results.gpu.jsonl"), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    html = out.read_text()
    assert "run-cpu" in html and "run-gpu" in html and 'id="matrix"' in html
    assert "INTERRUPTED" not in first_screen(html) and "PARTIAL" in first_screen(html)


def test_build_cli_writes_into_folder(tmp_path):
    d = sample.write_sample(tmp_path)
    assert cli.main(["build", str(d)]) == 0
    assert (d / "report.html").exists()
    assert cli.main(["build", str(d / "nope")]) == 2


def test_module_entry_point():
    p = subprocess.run([sys.executable, "-m", "bn_conformance.reports", "--help"], cwd=ROOT, capture_output=True,
                       text=True)
    assert p.returncode == 0 and "merge" in p.stdout and "build" in p.stdout


def _cli_merge(tmp_path, *files):
    out = tmp_path / "r.html"
    rc = cli.main(["merge", *map(str, files), "-o", str(out)])
    return rc, out


def test_complete_run_has_no_banner(tmp_path):
    cpu, _, _ = sample.records_v2()
    f = sample.write(tmp_path / "results.jsonl", cpu)
    html = reports.build_report([f], tmp_path / "r.html").read_text()
    top = first_screen(html)
    assert '<span class="status s-complete">COMPLETE</span>' in top
    assert "banner interrupted" not in top and "banner partial" not in top
    # the same run without its end record: interrupted
    g = sample.write(tmp_path / "cut" / "results.jsonl", [r for r in cpu if r["type"] != "end"])
    top = first_screen(reports.build_report([g], tmp_path / "r2.html").read_text())
    assert "banner interrupted" in top and "s-interrupted" in top
    # an end record saying "interrupted"
    h = sample.write(tmp_path / "int" / "results.jsonl",
                     [dict(r, status="interrupted") if r["type"] == "end" else r for r in cpu])
    top = first_screen(reports.build_report([h], tmp_path / "r3.html").read_text())
    assert "banner interrupted" in top and "the end record says it was interrupted" in top


def test_truncated_merged_file_names_file(tmp_path, capsys):
    cpu, _ = sample.records()
    f = tmp_path / "results.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in cpu)
    f.write_text(text[:-40])      # a merged file must be whole
    with pytest.raises(ReportError, match=re.escape(str(f)) + r":\d+: truncated"):
        reports.build_report([f], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()
    rc, out = _cli_merge(tmp_path, f)
    err = capsys.readouterr().err
    assert rc == 2 and str(f) in err and "truncated" in err and not out.exists()


def test_part_files_are_read_leniently(tmp_path):
    """A part file (a run in progress or interrupted) with a cut and a broken line: each costs
    only itself and is listed in the report's warnings."""
    cpu, _ = sample.records()
    lines = [json.dumps(r) for r in cpu]
    lines[5] = "{not json"
    f = tmp_path / "results.main.jsonl"
    f.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:30])
    html = reports.build_report([tmp_path], tmp_path / "r.html").read_text()
    warn = html[html.index('<h2 id="warnings">'):]
    assert f"{f}:6: not JSON" in warn and "truncated last line" in warn
    assert "2 records could not be read" in first_screen(html)


def test_malformed_input_names_file(tmp_path, capsys):
    cpu, _ = sample.records()
    f = tmp_path / "bad.jsonl"
    lines = [json.dumps(r) for r in cpu]
    lines[3] = "{not json"
    f.write_text("\n".join(lines) + "\n")
    rc, out = _cli_merge(tmp_path, f)
    assert rc == 2 and f"{f}:4: not JSON" in capsys.readouterr().err and not out.exists()
    g = tmp_path / "nocase.jsonl"
    rec = dict(cpu[2])
    assert rec["type"] == "case"
    del rec["verdict"]
    g.write_text(json.dumps(cpu[0]) + "\n" + json.dumps(rec) + "\n")
    with pytest.raises(ReportError, match=re.escape(str(g)) + r":2: .*verdict"):
        reports.build_report([g], tmp_path / "r.html")
    with pytest.raises(ReportError, match="no such file"):
        reports.build_report([tmp_path / "missing.jsonl"], tmp_path / "r.html")


def test_odd_values_do_not_break_the_report(tmp_path):
    """Fields the schema leaves open hold unexpected types: the report renders them as text."""
    cpu, _, _ = sample.records_v2()
    hdr = dict(cpu[0])
    hdr["findings"] = dict(hdr["findings"])
    f = dict(hdr["findings"]["flax-fast-variance"])
    f.update(adapters="flax.*", when={"offset": {"nested": [1, 2]}}, envelope=[1], devices=None, versions=3)
    hdr["findings"]["flax-fast-variance"] = f
    hdr["adapters"] = dict(hdr["adapters"], **{"flax.linen.jit": {"framework": ["x"], "devices": "cpu", "version": 1}})
    recs = [hdr] + cpu[1:]
    end = next(r for r in recs if r["type"] == "end")
    end["findings"] = end["findings"] + [{"id": 5, "adapter": None, "device": [], "stale": "yes", "matched": "many"}]
    case = next(r for r in recs if r["type"] == "case" and r["verdict"] == "xfail")
    case["inputs"] = {"mean_range": "wide", "shape": {"a": 1}, "eps": "small"}
    out = reports.build_report([sample.write(tmp_path / "results.jsonl", recs)], tmp_path / "r.html")
    assert out.read_text().rstrip().endswith("</html>")


def test_size_caps(tmp_path):
    """Thousands of failing cases with long errors and output: sections, tables and text blocks
    stay capped."""
    cpu, _, _ = sample.records_v2()
    hdr = dict(cpu[0], adapters=dict(cpu[0]["adapters"]))
    for i in range(build.PROFILE_CAP + 40):      # adapters of as many frameworks: cards stay capped
        hdr["adapters"][f"x{i}.bn"] = {"framework": f"fw{i}", "version": "1", "convention": "pytorch"}
    recs = [hdr]
    for i in range(build.TABLE_CAP + 100):
        cid = f"train_f32_nchw_2x3x2x2_normal_m0.1_e1e-05_k3_aff_trs_s{i}"
        big = 20_000 if i < 150 else 100
        recs.append(sample.case("run-cpu", "torch.nn", "cpu", cid, "raised",
                                [sample.check("outcome", "parity", "raised", None, detail="x" * big)],
                                error="E" * big, output="O" * big, repro=sample.repro(cid, "torch.nn", "cpu")))
    out = reports.build_report([sample.write(tmp_path / "results.jsonl", recs)], tmp_path / "r.html")
    html = out.read_text()
    assert html.count('<section class="case') <= build.DETAIL_CAP + build.EXAMPLE_CAP
    assert html.count("<tr data-verdict=") <= build.TABLE_CAP
    assert "E" * (build.BLOCK_CAP + 1) not in html and "more characters" in html
    assert len(cards(html)) == build.PROFILE_CAP and "more framework(s) without a card" in html
    assert out.stat().st_size < 8_000_000


def test_publish_keeps_what_the_report_needs(tmp_path):
    from bn_conformance.reports.publish import publish
    d = sample.write_sample(tmp_path / "res")
    data, report = publish([d / "results.cpu.jsonl", d / "results.gpu.jsonl"], tmp_path / "pub")
    with gzip.open(data, "rt") as fh:
        recs = [json.loads(line) for line in fh]
    kinds = [r["type"] for r in recs]
    assert kinds.count("run") == 2 and kinds.count("end") == 2 and "fingerprint" in kinds
    assert all(k == "end" for k in kinds[-2:])
    assert recs[0]["findings"] and any(r.get("findings") for r in recs if r["type"] == "case")
    html = report.read_text()
    assert "16-bit inputs without weight" in html and "no longer reproduces" in html


def test_atomic_output(tmp_path, monkeypatch):
    d = sample.write_sample(tmp_path / "res")
    out = tmp_path / "report.html"
    out.write_text("OLD REPORT")
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
        name, framework, convention = "fake.raise", "fake", "pytorch"

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
    assert "fake.silent" in html and 'data-framework="fake"' in html
    assert "INTERRUPTED" in first_screen(html)          # no end record
