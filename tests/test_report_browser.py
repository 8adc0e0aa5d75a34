"""The report in a real headless browser (Debian's chromium): scripts run without errors, the
first screen shows the run summary and the framework profile cards, a card's elements are
visible, hostile strings stay text, and screenshots of the first screen and of one card are
saved as PNG (under the test's tmp dir; also into $REPORT_SCREENSHOT_DIR when set).

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: fd 3
carries commands in, fd 4 replies out, messages end in NUL), so the test needs nothing but
the browser and the standard library.
"""
from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from bn_conformance import reports
from bn_conformance.reports import sample

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]
SCREEN = (1400, 1000)          # the "first screen": a laptop-sized window

pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)),
                                reason=f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium); "
                                       ".ci/run installs it")


class Chrome:
    """Headless Chromium over --remote-debugging-pipe: one page, its console and exceptions."""

    def __init__(self, width: int = SCREEN[0], height: int = SCREEN[1], timeout: float = 90.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="bn-report-chromium-")
        r_cmd, w_cmd = os.pipe()
        r_out, w_out = os.pipe()

        def child():      # chromium reads commands on fd 3 and writes replies on fd 4
            import fcntl
            a, b = fcntl.fcntl(r_cmd, fcntl.F_DUPFD, 10), fcntl.fcntl(w_out, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                                      "about:blank"], close_fds=False, preexec_fn=child,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(r_cmd)
        os.close(w_out)
        self.w = os.fdopen(w_cmd, "wb", buffering=0)
        self.r = os.fdopen(r_out, "rb", buffering=0)
        self.buf, self.next_id, self.events, self.log = b"", 0, [], []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = self.r.read(1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
            self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        m = json.loads(msg)
        method = m.get("method", "")
        if method in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded",
                      "Page.javascriptDialogOpening"):
            self.log.append(m)
        return m

    def call(self, method: str, session: bool = False, **params) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self.w.write(json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def goto(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._read())

    def eval(self, expression: str):
        r = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(str(r["exceptionDetails"])[:2000])
        return r["result"].get("value")

    def screenshot(self, path: Path, clip: dict | None = None) -> Path:
        params: dict = {"format": "png"}
        if clip:
            params |= {"clip": {k: clip[k] for k in ("x", "y", "width", "height")} | {"scale": 1},
                       "captureBeyondViewport": True}
        Path(path).write_bytes(base64.b64decode(self.call("Page.captureScreenshot", session=True, **params)["data"]))
        return Path(path)

    def errors(self) -> list[str]:
        """Console messages, uncaught exceptions, CSP reports and dialogs (the report logs nothing)."""
        out = []
        for m in self.log:
            p = m.get("params", {})
            if m["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") in ("verbose", "info"):
                continue
            if m["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                text = d.get("exception", {}).get("description") or d.get("text", "")
            elif m["method"] == "Runtime.consoleAPICalled":
                text = p.get("type", "") + " " + " ".join(str(a.get("value", a.get("description", "")))
                                                          for a in p.get("args", []))
            elif m["method"] == "Log.entryAdded":
                text = p.get("entry", {}).get("text", "")
            else:
                text = json.dumps(p)
            out.append(f"{m['method']}: {text[:600]}")
        return out

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 -- closing a browser that is already gone
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for f in (self.w, self.r):
            try:
                f.close()
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


def png_size(path: Path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


_VISIBLE = """(function (sel, root) {
  var base = root ? document.querySelector(root) : document;
  var out = [];
  if (!base) return out;
  base.querySelectorAll(sel).forEach(function (e) {
    var r = e.getBoundingClientRect(), s = getComputedStyle(e);
    out.push({x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height,
              visible: r.width > 0 && r.height > 0 && s.visibility === "visible" && s.display !== "none"
                       && parseFloat(s.opacity) > 0, text: e.textContent.trim().slice(0, 200)});
  });
  return out;
})(%s, %s)"""


def visible(chrome: Chrome, selector: str, root: str | None = None) -> list[dict]:
    return chrome.eval(_VISIBLE % (json.dumps(selector), json.dumps(root)))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = sample.write_sample(tmp_path_factory.mktemp("res"), hostile=True)
    return reports.build_report([d], d / "report.html")


@pytest.fixture(scope="module")
def chrome():
    c = Chrome()
    yield c
    c.close()


def _save(shot: Path) -> None:
    target = os.environ.get("REPORT_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


def test_first_screen(report, chrome, tmp_path):
    chrome.log.clear()
    chrome.goto(report.as_uri())
    assert chrome.eval('document.documentElement.getAttribute("data-report-ready")') == "1", \
        "the report's script did not run to the end"
    assert re.search(r"\d+ of \d+ shown", chrome.eval('document.querySelector("[data-role=count]").textContent'))
    height = SCREEN[1]
    # the run summary, its banners and the framework index are on the first screen
    for sel in (".summary .status", ".banner.interrupted", ".banner.partial", ".fwindex .chip"):
        els = visible(chrome, sel)
        assert els and all(e["visible"] for e in els), sel
        assert els[0]["y"] + els[0]["height"] <= height, f"{sel} is below the first screen"
    assert "INTERRUPTED" in visible(chrome, ".banner.interrupted")[0]["text"]
    # the first framework card starts on the first screen, its findings too
    cards = visible(chrome, "article.card")
    assert len(cards) >= 7 and cards[0]["y"] < height * 0.6
    first = visible(chrome, "article.card:first-of-type ol.findings li, article.card:first-of-type .unexplained li")
    assert first and first[0]["visible"] and first[0]["y"] < height
    shot = chrome.screenshot(tmp_path / "report_first_screen.png")
    assert png_size(shot) == SCREEN and shot.stat().st_size > 20_000
    _save(shot)
    # hostile strings stayed text: no dialog, no extra script or element, nothing logged
    assert chrome.eval('document.querySelectorAll("script").length') == 1
    assert chrome.eval('document.querySelectorAll("iframe, svg, object, embed, form, input[type=image]").length') == 0
    assert chrome.eval('Array.prototype.every.call(document.images, function (i) { return i.src.indexOf("data:") === 0; })')
    assert not chrome.errors(), "\n".join(chrome.errors())


def test_framework_card(report, chrome, tmp_path):
    chrome.goto(report.as_uri())
    root = 'article.card[data-framework="torch"]'
    card = visible(chrome, root)
    assert len(card) == 1 and card[0]["visible"]
    for sel, what in (("h2", "framework name"), (".ver", "versions"), (".meta", "adapters and devices"),
                      (".unexplained li", "failure no finding explains"), ("ol.findings li .sev", "severity badge"),
                      ("ol.findings li .ftitle", "finding title"), ("ol.findings li .fl2", "checks, cases, worst ratio"),
                      ("ol.findings li code.rerun", "rerun line"), ("ol.findings li .fl2 a", "evidence link"),
                      (".tag-stale", "stale finding"), ("table.fp td", "measured conventions"),
                      (".conform .fam", "what conforms")):
        els = visible(chrome, sel, root)
        assert els, f"the torch card has no {what} ({sel})"
        assert all(e["visible"] for e in els), f"{what} ({sel}) is not visible"
        for e in els:      # inside the card's box
            assert card[0]["y"] <= e["y"] and e["y"] + e["height"] <= card[0]["y"] + card[0]["height"] + 1, what
    texts = " ".join(e["text"] for e in visible(chrome, "ol.findings li", root))
    assert "16-bit inputs without weight" in texts and "no longer reproduces" in texts
    reruns = [e["text"] for e in visible(chrome, "ol.findings li code.rerun", root)]
    assert reruns and all(t.startswith("pytest conformance/ --case=") for t in reruns), reruns
    assert "torch.nn@cuda" in visible(chrome, ".unexplained li", root)[0]["text"]
    shot = chrome.screenshot(tmp_path / "report_card.png", card[0])
    w, h = png_size(shot)
    assert (w, h) == (round(card[0]["width"]), round(card[0]["height"])) or abs(w - card[0]["width"]) <= 1
    assert shot.stat().st_size > 10_000
    _save(shot)
    assert not chrome.errors(), "\n".join(chrome.errors())


def test_dom_dump_after_scripts(report, tmp_path):
    """The plain command-line path (--dump-dom) agrees: scripts ran, cards and sections are there."""
    p = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", report.as_uri()],
                       capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout
    assert 'data-report-ready="1"' in dom
    assert 'id="matrix"' in dom and 'id="case-0"' in dom and 'class="card' in dom
    assert "<script>alert" not in dom


def test_console_error_detection_works(chrome, tmp_path):
    """The error capture above would see a broken script and an alert (guards against a silently
    changed protocol)."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.log('hello'); nosuchfunction();</script></body></html>")
    chrome.log.clear()
    chrome.goto(bad.as_uri())
    errs = chrome.errors()
    assert any("nosuchfunction" in e for e in errs) and any("hello" in e for e in errs), errs
