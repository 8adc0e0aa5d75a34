"""Known deviations: data files, one per framework, in ``conformance/deviations/``.

Each file holds ``[[deviation]]`` tables:

  id        stable name, unique across files
  adapters  fnmatch patterns on adapter names            (e.g. ["torch.*"])
  cases     fnmatch patterns on case ids                 (e.g. ["train_*_1x*_notrs_*"])
  checks    check names the deviation shows in            (e.g. ["outcome"])
  versions  PEP 440 specifier on the framework version   (e.g. ">=2.0")
  devices   fnmatch patterns on devices (optional, default ["*"])
  reason    what differs from the reference, in one or two sentences
  evidence  where it is documented or reported (URL, source file, issue), or the
            measurement that established it

A failing check named by an entry that matches the case becomes an xfail. An entry is
strict per case: if a case it matches shows none of its checks failing, the case gets an
``xpass`` (which fails the run): the behaviour changed, narrow or delete the entry.
"""
from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

DIR = Path(__file__).with_name("deviations")
_REQUIRED = ("id", "adapters", "cases", "checks", "versions", "reason", "evidence")


@dataclass(frozen=True)
class Deviation:
    id: str
    adapters: tuple[str, ...]
    cases: tuple[str, ...]
    checks: tuple[str, ...]
    versions: str
    reason: str
    evidence: str
    devices: tuple[str, ...] = ("*",)
    source: str = ""

    def names(self, check: str) -> bool:
        return _match(check, self.checks)

    def matches(self, adapter: str, version: str, device: str, case_id: str, check: str | None = None) -> bool:
        if not _match(adapter, self.adapters) or not _match(device, self.devices):
            return False
        if check is not None and not self.names(check):
            return False
        if not _match(case_id, self.cases):
            return False
        return _version_in(version, self.versions)


_GLOB = set("*?[")


@lru_cache(maxsize=None)
def _split(patterns: tuple[str, ...]) -> tuple[frozenset, tuple[str, ...]]:
    """Exact names (a set lookup) apart from glob patterns (fnmatch)."""
    exact = frozenset(p for p in patterns if not _GLOB & set(p))
    return exact, tuple(p for p in patterns if _GLOB & set(p))


def _match(name: str, patterns: tuple[str, ...]) -> bool:
    exact, globs = _split(patterns)
    return name in exact or any(fnmatch.fnmatchcase(name, p) for p in globs)


@lru_cache(maxsize=None)
def _version_in(version: str, spec: str) -> bool:
    try:
        return Version(version.split("+")[0]) in SpecifierSet(spec)
    except InvalidVersion:
        return False


def load_file(path: Path) -> list[Deviation]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    out = []
    for i, d in enumerate(data.get("deviation", [])):
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise ValueError(f"{path}: deviation #{i + 1} ({d.get('id', '?')}) lacks {missing}")
        SpecifierSet(d["versions"])  # validates
        out.append(Deviation(id=d["id"], adapters=tuple(d["adapters"]), cases=tuple(d["cases"]),
                             checks=tuple(d["checks"]), versions=d["versions"], reason=d["reason"].strip(),
                             evidence=d["evidence"].strip(), devices=tuple(d.get("devices", ["*"])),
                             source=path.name))
    return out


@lru_cache(maxsize=None)
def all_deviations(directory: str = str(DIR)) -> tuple[Deviation, ...]:
    out: list[Deviation] = []
    for path in sorted(Path(directory).glob("*.toml")):
        out.extend(load_file(path))
    ids = [d.id for d in out]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"duplicate deviation ids: {sorted(dup)}")
    return tuple(out)


def for_case(adapter: str, version: str, device: str, case_id: str) -> list[Deviation]:
    return [d for d in all_deviations() if d.matches(adapter, version, device, case_id)]


def _features(case_id: str):
    from .case import BadDescriptor, parse
    try:
        c = parse(case_id)
    except BadDescriptor:
        return None
    return c.dtype


@lru_cache(maxsize=None)
def _covered(d: Deviation) -> frozenset:
    """The dtypes of the exact cases an entry lists."""
    return frozenset(f for p in d.cases if not _GLOB & set(p) for f in [_features(p)] if f)


def for_generated(adapter: str, version: str, device: str, case_id: str) -> list[Deviation]:
    """Entries that may explain a hypothesis-generated case: those matching it directly,
    and those recorded on curated cases of the same dtype for the same adapter. A failing
    check of a generated case is attributed to such an entry only if the entry names that
    check (``evaluate._apply_deviations``); the attribution is shown with the entry's id in
    the results and the report, and never strict, since generated cases change with
    hypothesis versions. Checks no entry names still fail."""
    f = _features(case_id)
    return [d for d in all_deviations()
            if _match(adapter, d.adapters) and _match(device, d.devices) and _version_in(version, d.versions)
            and (_match(case_id, d.cases) or f in _covered(d))]


def find(adapter: str, version: str, device: str, case_id: str, check: str) -> Deviation | None:
    for d in all_deviations():
        if d.matches(adapter, version, device, case_id, check):
            return d
    return None
