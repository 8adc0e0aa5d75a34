"""The report in a real headless browser (Debian's chromium): scripts run without errors,
the matrix and case sections are in the DOM after they ran, and a screenshot is saved."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bn_conformance import reports
from bn_conformance.reports import sample

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0"]
SCREENSHOT_DIR = Path(os.environ.get("REPORT_SCREENSHOT_DIR", "/tmp/issue5"))

pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)),
                                reason=f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium); "
                                       ".ci/run installs it")

# chromium logs every console message as "...:INFO:CONSOLE:<line>] "<text>", source: ..." (with
# --enable-logging=stderr --v=0); the report logs nothing, so any console line is an error
_JS_ERROR = re.compile(r":CONSOLE[:(]|Uncaught|Refused to (execute|load|apply|connect)|Content Security Policy")


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if _JS_ERROR.search(line)]


def _chromium(tmp_path: Path, *args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = sample.write_sample(tmp_path_factory.mktemp("res"), hostile=True)
    return reports.build_report([d], d / "report.html")


def test_dom_after_scripts_and_no_console_errors(report, tmp_path):
    p = _chromium(tmp_path, "--dump-dom", report.as_uri())
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout
    assert 'data-report-ready="1"' in dom, "the report's script did not run to the end"
    assert 'id="matrix"' in dom and 'id="case-0"' in dom
    # the filter script ran: it writes "N of M shown" beside the attention table
    assert re.search(r"\d+ of \d+ shown", dom)
    assert "<script>alert" not in dom
    errors = _errors(p.stderr)
    assert not errors, "\n".join(errors)


def test_screenshot(report, tmp_path):
    shot = tmp_path / "report.png"
    p = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2000", report.as_uri())
    assert p.returncode == 0, p.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    errors = _errors(p.stderr)
    assert not errors, "\n".join(errors)
    try:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SCREENSHOT_DIR / "report_browser_test.png")
    except OSError:
        pass


def test_console_error_detection_works(tmp_path):
    """The error grep above would see a broken script (guards against a silently changed log format)."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>nosuchfunction();</script></body></html>")
    p = _chromium(tmp_path, "--dump-dom", bad.as_uri())
    assert any("Uncaught ReferenceError" in e for e in _errors(p.stderr)), p.stderr[-2000:]
