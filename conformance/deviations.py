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
        return any(fnmatch.fnmatchcase(check, p) for p in self.checks)

    def matches(self, adapter: str, version: str, device: str, case_id: str, check: str | None = None) -> bool:
        if not any(fnmatch.fnmatchcase(adapter, p) for p in self.adapters):
            return False
        if not any(fnmatch.fnmatchcase(device, p) for p in self.devices):
            return False
        if check is not None and not self.names(check):
            return False
        if not any(fnmatch.fnmatchcase(case_id, p) for p in self.cases):
            return False
        try:
            return Version(version.split("+")[0]) in SpecifierSet(self.versions)
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


def find(adapter: str, version: str, device: str, case_id: str, check: str) -> Deviation | None:
    for d in all_deviations():
        if d.matches(adapter, version, device, case_id, check):
            return d
    return None
