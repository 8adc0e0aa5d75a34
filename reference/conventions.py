"""Framework conventions as data (``conventions.toml``) and their meaning for the reference."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .running import RunningRule

_FILE = Path(__file__).with_name("conventions.toml")
_FIELDS = ("title", "channel_axis", "momentum_form", "momentum_default", "schedule", "momentum_none",
           "estimator", "eps_default", "init_mean", "init_var", "frozen", "one_value", "invalid_stats")


@dataclass(frozen=True)
class Convention:
    name: str
    title: str
    channel_axis: int
    momentum_form: str
    momentum_default: float
    schedule: str
    momentum_none: str
    estimator: str
    eps_default: float
    init_mean: float
    init_var: float
    frozen: str
    one_value: str
    invalid_stats: str          # supplied statistics with var + eps <= 0, NaN or Inf: raises | propagates | clamps
    sources: dict = field(default_factory=dict, compare=False, hash=False)
    unverified: tuple = ()      # fields no source or measurement establishes (the report marks them)
    notes: str = ""

    def to_new_weight(self, native_momentum: float) -> float:
        """The weight f of the new batch statistic that the API's own momentum value means."""
        return 1.0 - native_momentum if self.momentum_form == "old" else native_momentum

    def rule(self, f: float | None) -> RunningRule:
        """The reference update rule for a case's new-weight momentum f (None: cumulative)."""
        if f is None:
            return RunningRule("cumulative", 0.0, self.estimator)
        return RunningRule(self.schedule, float(f), self.estimator)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("name",) + _FIELDS} | {"sources": dict(self.sources),
                                                                    "unverified": list(self.unverified),
                                                                    "notes": self.notes}


@lru_cache(maxsize=None)
def presets() -> dict[str, Convention]:
    data = tomllib.loads(_FILE.read_text(encoding="utf-8"))
    out = {}
    for name, entry in data.items():
        missing = [k for k in _FIELDS if k not in entry]
        if missing:
            raise ValueError(f"{_FILE.name}: preset [{name}] lacks {missing}")
        out[name] = Convention(name=name, sources=entry.get("sources", {}), unverified=tuple(entry.get("unverified", ())),
                               notes=entry.get("notes", ""), **{k: entry[k] for k in _FIELDS})
    return out


def preset(name: str) -> Convention:
    try:
        return presets()[name]
    except KeyError:
        raise KeyError(f"no convention preset {name!r}; known: {sorted(presets())}") from None
