"""Findings: the known ways a framework departs from the reference, one entry per cause.

Data files, one per framework, in ``conformance/findings/*.toml``; each holds ``[[finding]]``
tables:

  id         stable name, unique across files ("haiku-one-pass-variance")
  title      one line, what a user would notice
  severity   "high"   wrong results on ordinary inputs or a silently different convention
             "medium" results beyond the error policy on demanding inputs (large offsets,
                      16-bit, extreme magnitudes)
             "low"    edge cases (empty batch, non-finite inputs, degenerate shapes)
  adapters   fnmatch patterns on adapter names
  versions   PEP 440 specifier on the framework version
  devices    fnmatch patterns on devices (optional, default every device)
  checks     the checks the mechanism can affect (names or fnmatch patterns, e.g. "dx",
             "running_*", "fingerprint.variance")
  when       the cases it can affect: a list of alternatives, each a table of conditions on
             the case's facts (``facts``: mode, dtype, layout, rank, channel, N, C, n, dist,
             offset, flags, momentum, eps, steps, affine, track, fixed, stats, replicas,
             shards, init_train, adapter, device), all of which must hold. A condition is a value
             (equality), a list (membership), or a string "<op> number" with op one of
             < <= > >= != for numeric facts. Keys prefixed "not_" negate. An empty list or
             no ``when`` matches every case.
  envelope   optional, what an attributed failure may look like:
               max_ratio  error/tolerance at most this (finite failures)
               pattern    "nonfinite": only non-finite-pattern failures (NaN/Inf where the
                          reference is finite, or the reverse); "finite": only finite errors
  reason     the mechanism, in a few sentences
  evidence   source lines, issue links, measurements

Judging a case: a failing check named by a finding whose ``when`` matches the case (and whose
envelope it fits) becomes an xfail attributed to that finding; every other failing check
still fails. The case record lists each matching finding and whether it triggered.

Strictness is per finding, per run (``stale``): a finding that matched cases of the run, all
of whose matching grid cases ran, and that triggered on none of them no longer reproduces:
the run fails with "narrow or delete". A matched case that passes is "not triggered", not a
failure, so a case whose error sits near the tolerance may fall either side of it on another
CPU without changing the run's outcome, while a regression in a check the finding does not
name, or on a case its ``when`` does not cover, still fails.
"""
from __future__ import annotations

import fnmatch
import math
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

DIR = Path(__file__).with_name("findings")
SEVERITIES = ("high", "medium", "low")
_REQUIRED = ("id", "title", "severity", "adapters", "versions", "checks", "reason", "evidence")
_OPS = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__, "!=": float.__ne__}


class FindingError(ValueError):
    """A malformed findings file; the message names the file, the entry and the problem."""


def facts(case, adapter: str = "", device: str = "cpu") -> dict:
    """What a finding's ``when`` may test: the case's descriptor fields and derived ones."""
    from .distributions import DISTRIBUTIONS
    dist = DISTRIBUTIONS[case.dist]
    return {
        "mode": case.mode, "dtype": case.dtype, "layout": case.layout, "rank": len(case.shape),
        "channel": "first" if case.channel_axis == 1 else "last",
        "N": case.shape[0], "C": case.channels, "n": case.n, "dist": case.dist,
        "offset": dist.offset, "flags": sorted(dist.flags),
        "momentum": "cumulative" if case.momentum is None else case.momentum, "eps": case.eps,
        "steps": case.steps, "affine": case.affine, "track": case.track, "fixed": case.fixed,
        "stats": case.stats, "replicas": len(case.replicas) if case.replicas else 1,
        "shards": None if not case.replicas else ("equal" if len(set(case.replicas)) == 1 else "unequal"),
        "init_train": case.init_train, "adapter": adapter, "device": device,
    }


def _cond(key: str, want, have) -> bool:
    if isinstance(have, list):                       # set-valued fact ("flags"): any member
        wants = want if isinstance(want, list) else [want]
        return any(w in have for w in wants)
    if isinstance(want, list):
        return any(_cond(key, w, have) for w in want)
    if isinstance(want, str) and not isinstance(have, str):
        op, _, num = want.strip().partition(" ")
        if op in _OPS:
            try:
                return have is not None and _OPS[op](float(have), float(num))
            except (TypeError, ValueError):
                return False
    if isinstance(want, float) or isinstance(have, float):
        try:
            return float(want) == float(have)
        except (TypeError, ValueError):
            return False
    return want == have


def _alternative(alt: dict, f: dict) -> bool:
    for key, want in alt.items():
        neg = key.startswith("not_")
        k = key[4:] if neg else key
        if _cond(k, want, f[k]) == neg:
            return False
    return True


@dataclass(frozen=True)
class Envelope:
    max_ratio: float = math.inf
    pattern: str = "any"             # any | nonfinite | finite

    def fits(self, check) -> bool:
        nonfinite = "differ in finiteness" in (check.detail or "")
        if self.pattern == "nonfinite" and not nonfinite:
            return False
        if self.pattern == "finite" and nonfinite:
            return False
        r = check.ratio
        return nonfinite or r is None or not (r > self.max_ratio)


@dataclass(frozen=True)
class Finding:
    id: str
    title: str
    severity: str
    adapters: tuple[str, ...]
    versions: str
    checks: tuple[str, ...]
    reason: str
    evidence: str
    when: tuple = ()
    devices: tuple[str, ...] = ("*",)
    envelope: Envelope = field(default_factory=Envelope)
    source: str = ""

    def applies(self, adapter: str, version: str, device: str) -> bool:
        return (_glob(adapter, self.adapters) and _glob(device, self.devices)
                and _version_in(version, self.versions))

    def covers(self, case, adapter: str = "", device: str = "cpu") -> bool:
        if not self.when:
            return True
        f = facts(case, adapter, device)
        return any(_alternative(alt, f) for alt in self.when)

    def names(self, check: str) -> bool:
        return _glob(check, self.checks)

    def as_dict(self) -> dict:
        """What the run header records (the report renders findings from this alone)."""
        return {"id": self.id, "title": self.title, "severity": self.severity, "adapters": list(self.adapters),
                "versions": self.versions, "devices": list(self.devices), "checks": list(self.checks),
                "when": [dict(a) for a in self.when], "reason": self.reason, "evidence": self.evidence,
                "envelope": {"max_ratio": None if math.isinf(self.envelope.max_ratio) else self.envelope.max_ratio,
                             "pattern": self.envelope.pattern}, "source": self.source}


def _glob(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


@lru_cache(maxsize=None)
def _version_in(version: str, spec: str) -> bool:
    try:
        return Version(version.split("+")[0]) in SpecifierSet(spec)
    except InvalidVersion:
        return False


_KNOWN_FACTS = ("mode", "dtype", "layout", "rank", "channel", "N", "C", "n", "dist", "offset", "flags", "momentum",
                "eps", "steps", "affine", "track", "fixed", "stats", "replicas", "shards", "init_train", "adapter",
                "device")


def _parse(d: dict, where: str, source: str) -> Finding:
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise FindingError(f"{where}: lacks {missing}")
    for k in ("reason", "evidence", "title"):
        text = str(d[k]).strip()
        if not text or text.upper().startswith("TODO"):
            raise FindingError(f"{where}: {k} is empty or a TODO: every finding needs a human-readable {k}")
    if d["severity"] not in SEVERITIES:
        raise FindingError(f"{where}: severity {d['severity']!r} not in {SEVERITIES}")
    try:
        SpecifierSet(d["versions"])
    except InvalidSpecifier as exc:
        raise FindingError(f"{where}: versions: {exc}") from None
    when = d.get("when", [])
    if isinstance(when, dict):
        when = [when]
    for alt in when:
        unknown = [k for k in alt if (k[4:] if k.startswith("not_") else k) not in _KNOWN_FACTS]
        if unknown:
            raise FindingError(f"{where}: when: unknown fact(s) {unknown}; known: {list(_KNOWN_FACTS)}")
    env = d.get("envelope", {})
    bad = set(env) - {"max_ratio", "pattern"}
    if bad or env.get("pattern", "any") not in ("any", "nonfinite", "finite"):
        raise FindingError(f"{where}: envelope takes max_ratio and pattern (any|nonfinite|finite), got {env}")
    return Finding(id=d["id"], title=str(d["title"]).strip(), severity=d["severity"], adapters=tuple(d["adapters"]),
                   versions=d["versions"], checks=tuple(d["checks"]), reason=" ".join(str(d["reason"]).split()),
                   evidence=" ".join(str(d["evidence"]).split()), when=tuple(tuple_dict(a) for a in when),
                   devices=tuple(d.get("devices", ["*"])),
                   envelope=Envelope(float(env.get("max_ratio", math.inf)), env.get("pattern", "any")),
                   source=source)


class tuple_dict(dict):
    """A hashable dict (the conditions of one ``when`` alternative)."""

    def __hash__(self):
        return hash(tuple(sorted((k, repr(v)) for k, v in self.items())))


def load_file(path: Path) -> list[Finding]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FindingError(f"{path.name}: not valid TOML: {exc}") from None
    unknown = set(data) - {"finding"}
    if unknown:
        raise FindingError(f"{path.name}: unknown top-level table(s) {sorted(unknown)}; expected [[finding]]")
    return [_parse(d, f"{path.name}: finding #{i + 1} ({d.get('id', '?')})", path.name)
            for i, d in enumerate(data.get("finding", []))]


@lru_cache(maxsize=None)
def all_findings(directory: str = str(DIR)) -> tuple[Finding, ...]:
    out: list[Finding] = []
    for path in sorted(Path(directory).glob("*.toml")):
        out.extend(load_file(path))
    seen: set = set()
    dup = {f.id for f in out if f.id in seen or seen.add(f.id)}
    if dup:
        raise FindingError(f"duplicate finding ids: {sorted(dup)}")
    return tuple(out)


def applicable(adapter: str, version: str, device: str) -> list[Finding]:
    return [f for f in all_findings() if f.applies(adapter, version, device)]


def for_case(case, adapter: str, version: str, device: str) -> list[Finding]:
    return [f for f in applicable(adapter, version, device) if f.covers(case, adapter, device)]


def judge_run(records: list[dict], grid_cases) -> list[dict]:
    """Per (finding, adapter, device) of a run: how many cases it matched and triggered on,
    whether the run exercised it (every grid case it covers for that target ran, or the
    target's fingerprint measured a probe the finding names) and whether it is
    stale (exercised, and triggered nowhere: "no longer reproduces: narrow or delete").
    ``grid_cases``: the grid the run's tier defines (cases a complete run would run)."""
    ran: dict = {}
    listed: dict = {}
    for r in records:
        if r.get("type") not in ("case", "fingerprint"):
            continue
        key = (r.get("adapter"), r.get("device"))
        ran.setdefault(key, {"cases": set(), "fingerprint": set(), "version": r.get("version")})
        if r["type"] == "case":
            ran[key]["cases"].add(r.get("case_id"))
        else:                           # the findings its measured probes could show
            ran[key]["fingerprint"] |= {f.get("id") for f in r.get("findings") or [] if isinstance(f, dict)}
        for f in r.get("findings") or []:
            if isinstance(f, dict) and "id" in f:
                st = listed.setdefault((f["id"],) + key, {"matched": 0, "triggered": 0})
                st["matched"] += 1
                st["triggered"] += bool(f.get("triggered"))
    out = []
    for (adapter, device), info in sorted(ran.items(), key=lambda kv: tuple(map(str, kv[0]))):
        for f in applicable(str(adapter), str(info["version"]), str(device)):
            st = listed.get((f.id, adapter, device), {"matched": 0, "triggered": 0})
            fp_only = all(c.startswith("fingerprint.") for c in f.checks)
            covered = set() if fp_only else {c.id for c in grid_cases if f.covers(c, adapter, device)}
            exercised = (bool(covered) and covered <= info["cases"]) or f.id in info["fingerprint"]
            out.append({"id": f.id, "adapter": adapter, "device": device, "matched": st["matched"],
                        "triggered": st["triggered"], "grid_cases": len(covered), "exercised": exercised,
                        "stale": exercised and st["matched"] > 0 and st["triggered"] == 0})
    return out
