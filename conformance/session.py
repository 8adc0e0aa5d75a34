"""One run's place on disk: its folder, its part files, its header and its end record.

Layout (``--results-root``, default ``./reports``):

  reports/runs/<run id>/results.<worker>.jsonl   written during the run, one line per case,
                                                flushed as each case finishes
  reports/runs/<run id>/results.jsonl           the parts merged at the end (parts removed)
  reports/runs/<run id>/report.html             the report of this run
  reports/latest -> runs/<run id>               the last complete, full run (a symbolic link;
                                                a text file LATEST where links are not possible)

Nothing is created before the first case record is written, so ``--help``, ``--co``,
``--version`` and collection errors write and delete nothing; a run never touches another
run's folder, so concurrent runs in one checkout both complete, and old runs stay until
``python -m bn_conformance.reports prune``. ``--results-dir DIR`` puts one run in DIR instead
(which must not hold another run's results). A run is "partial" when it ran a subset of the
suite (``--adapter``, ``--case``, ``--device``, ``-k``, ``-m``, ``--lf``, selected files, the
quick tier); a partial or interrupted run does not move ``latest`` unless ``--update-latest``.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from .results import Writer, merge_parts, results_files

LATEST = "latest"


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def run_folder(root: Path, run_id: str) -> Path:
    return Path(root) / "runs" / run_id


def _writable(folder: Path | None) -> bool:
    """Can a file be created in ``folder``? Tried, not inferred from permission bits (root passes
    os.access on read-only mounts and /proc); the probe file is anonymous and vanishes."""
    if folder is None:
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_results_dir(path: Path) -> str | None:
    """Why ``path`` cannot take a new run (None: it can)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"--results-dir {path}: exists and is not a folder"
    if path.is_dir() and results_files(path):
        return (f"--results-dir {path}: holds the results of another run; choose an empty or new folder "
                f"(runs never overwrite runs)")
    if _inside_package(path):
        return f"--results-dir {path}: inside the suite's package folder; choose a folder outside it"
    probe = path if path.exists() else next((p for p in path.parents if p.exists()), None)
    if not _writable(probe):
        return f"--results-dir {path}: not writable"
    return None


def _inside_package(path: Path) -> bool:
    """Whether ``path`` lies in the suite's own package folder, where a ``reports`` folder
    would shadow the ``bn_conformance.reports`` subpackage (pytest run from inside conformance/)."""
    pkg, p = Path(__file__).resolve().parent, Path(path).resolve()
    return p == pkg or pkg in p.parents


def check_root(root: Path) -> str | None:
    root = Path(root)
    if _inside_package(root):
        return (f"--results-root {root}: inside the suite's package folder, where it would hide "
                f"bn_conformance.reports; run from the repository root or pass --results-root")
    probe = root if root.exists() else next((p for p in root.parents if p.exists()), None)
    if root.exists() and not root.is_dir():
        return f"--results-root {root}: exists and is not a folder"
    if not _writable(probe):
        return f"--results-root {root}: not writable"
    return None


class RunFiles:
    """The part file of this process, opened on the first record."""

    def __init__(self, folder: Path, worker: str, header_fn):
        self.folder, self.worker, self._header_fn = Path(folder), worker, header_fn
        self.writer: Writer | None = None

    def open(self) -> None:
        if self.writer is None:
            self.writer = Writer(self.folder, self.worker, self._header_fn())

    def write(self, record: dict) -> None:
        self.open()
        self.writer.write(record)

    @property
    def started(self) -> bool:
        return self.writer is not None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def finish(folder: Path, run_id: str, status: str, extra: dict | None = None) -> Path | None:
    """Merge the parts into results.jsonl and append the end record. None if nothing was written."""
    folder = Path(folder)
    if not folder.is_dir() or not list(folder.glob("results.*.jsonl")):
        return None
    end = {"type": "end", "run_id": run_id, "status": status,
           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} | (extra or {})
    return merge_parts(folder, end)


def point_latest(root: Path, folder: Path) -> Path:
    """Make ``root/latest`` name ``folder`` (atomically where the platform allows)."""
    root, folder = Path(root), Path(folder)
    link = root / LATEST
    target = os.path.relpath(folder, root)
    if link.is_dir() and not link.is_symlink():          # a results folder of an older suite version
        legacy = root / "runs" / f"legacy-{int(link.stat().st_mtime)}"
        legacy.parent.mkdir(parents=True, exist_ok=True)
        link.rename(legacy)
    tmp = root / f".{LATEST}.{os.getpid()}.tmp"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError:
        (root / "LATEST").write_text(target + "\n", encoding="utf-8")
    return link


def latest(root: Path) -> Path | None:
    """The folder ``latest`` names, if any."""
    root = Path(root)
    link = root / LATEST
    if link.exists():
        return link.resolve()
    text = root / "LATEST"
    if text.exists():
        p = (root / text.read_text(encoding="utf-8").strip()).resolve()
        return p if p.exists() else None
    return None


def prune(root: Path, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest runs under ``root/runs`` (never the one ``latest`` names)."""
    import shutil
    runs = sorted((p for p in (Path(root) / "runs").glob("*") if p.is_dir()), key=lambda p: p.name, reverse=True)
    current = latest(root)
    removed = []
    for p in runs[keep:]:
        if current is not None and p.resolve() == current:
            continue
        shutil.rmtree(p)
        removed.append(p)
    return removed


def read_end(folder: Path) -> dict | None:
    """The end record of a finished run folder (None: none, e.g. an interrupted run)."""
    for f in results_files(Path(folder)):
        try:
            with open(f, encoding="utf-8") as fh:
                for line in fh:
                    if '"end"' in line:
                        rec = json.loads(line)
                        if rec.get("type") == "end":
                            return rec
        except (OSError, ValueError):
            return None
    return None
