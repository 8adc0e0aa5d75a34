"""The case model and its descriptor.

A case is a compact, readable descriptor that is also its repro line (in the spirit of
oneDNN benchdnn's problem descriptors). Fields, in descriptor order, joined by "_":

  mode      train | infer | frozen | fresh               (``vocab.MODES``)
  dtype     f16 | bf16 | f32 | f64                        (``vocab.DTYPES`` tokens)
  layout    nc | ncl | nlc | nchw | nhwc | ncdhw | ndhwc  (channel axis = position of "c")
  shape     NxCx... in array order, e.g. 2x3x4x5 (nchw) or 2x4x5x3 (nhwc)
  dist      input distribution (``distributions.DISTRIBUTIONS``)
  m<f>      new-batch momentum weight f in [0, 1] (PyTorch's form), or "mcum" for a
            cumulative average
  e<eps>    epsilon, finite and >= 0
  k<K>      number of steps
  aff|noaff       affine parameters gamma, beta
  trs|notrs       track running statistics
  [fixed]         every step sees the same batch (convergence cases)
  [st<kind>]      supplied running statistics (``vocab.SUPPLIED``): "given" starts training
                  from supplied valid statistics; negvar, zerovar, nanvar, infvar, nanmean
                  are invalid ones (inference, frozen, or the start of training)
  [r<a>+<b>...]   the batch split across replicas of a, b, ... samples (synchronised
                  batch norm: statistics pooled over every replica)
  [inittrain]     "fresh" cases only: the framework's initialisation runs in training mode
                  (where initialising runs a forward pass: Flax init, Haiku init); without it,
                  initialisation runs in inference mode
  s<seed>         seed

Example: ``train_f32_nchw_2x3x4x5_normal_m0.1_e1e-05_k3_aff_trs_s0``.

Cases are validated when built or parsed: sizes and steps are bounded (``LIMITS``; raise
them with the environment variables BN_MAX_STEPS and BN_MAX_CASE_VALUES) so that a
descriptor can never ask the suite for unbounded work.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, replace

from .distributions import DISTRIBUTIONS
from .vocab import DTYPE_BY_TOKEN, DTYPES, LAYOUTS, MODES, SUPPLIED


class BadDescriptor(ValueError):
    pass


def _limit(var: str, default: int) -> int:
    try:
        return int(os.environ.get(var, default))
    except ValueError:
        return default


LIMITS = {"steps": _limit("BN_MAX_STEPS", 1000), "values": _limit("BN_MAX_CASE_VALUES", 1 << 24)}


@dataclass(frozen=True)
class Case:
    mode: str
    dtype: str
    layout: str
    shape: tuple[int, ...]
    dist: str = "normal"
    momentum: float | None = 0.1
    eps: float = 1e-5
    steps: int = 1
    affine: bool = True
    track: bool = True
    fixed: bool = False
    seed: int = 0
    stats: str | None = None
    replicas: tuple[int, ...] | None = None
    init_train: bool = False

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.replicas is not None:
            object.__setattr__(self, "replicas", tuple(int(r) for r in self.replicas))
        problems = self.problems()
        if problems:
            raise BadDescriptor("; ".join(problems))

    def problems(self) -> list[str]:
        out = []
        if self.mode not in MODES:
            out.append(f"mode {self.mode!r} not in {tuple(MODES)}")
        if self.dtype not in DTYPES:
            out.append(f"dtype {self.dtype!r} not in {tuple(DTYPES)}")
        if self.layout not in LAYOUTS:
            out.append(f"layout {self.layout!r} not in {LAYOUTS}")
        elif len(self.shape) != len(self.layout):
            out.append(f"shape {self.shape} has rank {len(self.shape)}, layout {self.layout!r} needs {len(self.layout)}")
        if any(s < 0 for s in self.shape):
            out.append(f"shape {self.shape} has a negative size")
        if self.dist not in DISTRIBUTIONS:
            out.append(f"dist {self.dist!r} not in {sorted(DISTRIBUTIONS)}")
        if self.momentum is not None and not (isinstance(self.momentum, (int, float)) and 0.0 <= self.momentum <= 1.0):
            out.append(f"momentum {self.momentum!r} is not in [0, 1] (the weight of the new batch statistic)")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0.0):
            out.append(f"eps {self.eps!r} must be finite and >= 0")
        if not 1 <= self.steps <= LIMITS["steps"]:
            out.append(f"steps {self.steps} not in [1, {LIMITS['steps']}] (BN_MAX_STEPS raises the limit)")
        values = math.prod(self.shape) * max(self.steps, 1)
        if values > LIMITS["values"]:
            out.append(f"{values} input values over all steps exceed {LIMITS['values']} "
                       "(BN_MAX_CASE_VALUES raises the limit)")
        if self.seed < 0 or self.seed >= 2 ** 63:
            out.append(f"seed {self.seed} not in [0, 2^63)")
        if self.stats is not None and self.stats not in SUPPLIED:
            out.append(f"supplied statistics {self.stats!r} not in {tuple(SUPPLIED)}")
        if self.stats is not None and self.mode == "fresh":
            out.append("a fresh layer gets no supplied statistics")
        if self.stats is not None and not self.track:
            out.append("supplied statistics need track (trs)")
        if self.init_train and self.mode != "fresh":
            out.append("inittrain applies to fresh cases only")
        if self.replicas is not None and self.shape:
            if len(self.replicas) < 2 or any(r < 0 for r in self.replicas) or sum(self.replicas) != self.shape[0]:
                out.append(f"replicas {self.replicas} must be 2 or more batch sizes summing to N = {self.shape[0]}")
        return out

    @property
    def channel_axis(self) -> int:
        return self.layout.index("c")

    @property
    def channels(self) -> int:
        return self.shape[self.channel_axis]

    @property
    def n(self) -> int:
        """Values reduced per channel (over every replica)."""
        return math.prod(s for i, s in enumerate(self.shape) if i != self.channel_axis)

    @property
    def supplied(self) -> bool:
        """Does the scenario start from running statistics the case supplies?"""
        return self.track and (self.mode in ("infer", "frozen") or self.stats is not None)

    @property
    def id(self) -> str:
        mom = "mcum" if self.momentum is None else f"m{float(self.momentum)!r}"
        parts = [self.mode, DTYPES[self.dtype].token, self.layout, "x".join(map(str, self.shape)), self.dist,
                 mom, f"e{float(self.eps)!r}", f"k{self.steps}", "aff" if self.affine else "noaff",
                 "trs" if self.track else "notrs"]
        if self.fixed:
            parts.append("fixed")
        if self.stats:
            parts.append(f"st{self.stats}")
        if self.replicas:
            parts.append("r" + "+".join(map(str, self.replicas)))
        if self.init_train:
            parts.append("inittrain")
        parts.append(f"s{self.seed}")
        return "_".join(parts)

    def with_(self, **kw) -> "Case":
        return replace(self, **kw)

    def __str__(self) -> str:
        return self.id


_TOKEN = re.compile(r"^(?P<mode>[a-z]+)_(?P<dt>[a-z0-9]+)_(?P<layout>[a-z]+)_(?P<shape>\d+(?:x\d+)*)_"
                    r"(?P<dist>[a-z0-9]+?)_m(?P<mom>cum|\d+(?:\.\d+)?(?:e[+-]?\d+)?)_e(?P<eps>\d+(?:\.\d+)?(?:e[+-]?\d+)?)"
                    r"_k(?P<k>\d+)_(?P<aff>aff|noaff)_(?P<trs>trs|notrs)(?P<fixed>_fixed)?(?:_st(?P<stats>[a-z]+))?"
                    r"(?:_r(?P<rep>\d+(?:\+\d+)+))?(?P<init>_inittrain)?_s(?P<seed>\d+)$")

EXAMPLE = "train_f32_nchw_2x3x4x5_normal_m0.1_e1e-05_k3_aff_trs_s0"


def parse(descriptor: str) -> Case:
    """The case a descriptor names; ``parse(c.id) == c`` for every case. Raises
    BadDescriptor (never anything else) for a string that names no valid case."""
    if not isinstance(descriptor, str) or len(descriptor) > 400:
        raise BadDescriptor(f"not a case descriptor: {str(descriptor)[:80]!r}")
    m = _TOKEN.match(descriptor.strip())
    if not m:
        raise BadDescriptor(f"not a case descriptor: {descriptor!r} (expected e.g. {EXAMPLE!r})")
    g = m.groupdict()
    if g["dt"] not in DTYPE_BY_TOKEN:
        raise BadDescriptor(f"unknown dtype token {g['dt']!r} in {descriptor!r}; known: {sorted(DTYPE_BY_TOKEN)}")
    try:
        return Case(mode=g["mode"], dtype=DTYPE_BY_TOKEN[g["dt"]].name, layout=g["layout"],
                    shape=tuple(int(s) for s in g["shape"].split("x")), dist=g["dist"],
                    momentum=None if g["mom"] == "cum" else float(g["mom"]), eps=float(g["eps"]),
                    steps=int(g["k"]), affine=g["aff"] == "aff", track=g["trs"] == "trs",
                    fixed=bool(g["fixed"]), seed=int(g["seed"]), stats=g["stats"],
                    replicas=tuple(int(r) for r in g["rep"].split("+")) if g["rep"] else None,
                    init_train=bool(g["init"]))
    except BadDescriptor as exc:
        raise BadDescriptor(f"{descriptor!r}: {exc}") from None
    except (ValueError, OverflowError) as exc:
        raise BadDescriptor(f"{descriptor!r}: {exc}") from None
