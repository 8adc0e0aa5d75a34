"""The case model and its descriptor.

A case is a compact, readable descriptor that is also its repro line (in the spirit of
oneDNN benchdnn's problem descriptors). Fields, in descriptor order, joined by "_":

  mode      train | infer | frozen
  dtype     f16 | bf16 | f32 | f64          (input/output dtype)
  layout    nc | ncl | nlc | nchw | nhwc | ncdhw | ndhwc   (channel axis = position of "c")
  shape     NxCx... in array order, e.g. 2x3x4x5 (nchw) or 2x4x5x3 (nhwc)
  dist      input distribution, see ``conformance.inputs.DISTRIBUTIONS``
  m<f>      new-batch momentum weight f (PyTorch's form), or "mcum" for a cumulative average
  e<eps>    epsilon
  k<K>      number of steps
  aff|noaff       affine parameters gamma, beta
  trs|notrs       track running statistics
  [fixed]         every step sees the same batch (convergence cases)
  s<seed>         seed

Example: ``train_f32_nchw_2x3x4x5_normal_m0.1_e1e-05_k3_aff_trs_s0``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

DTYPES = {"f16": "float16", "bf16": "bfloat16", "f32": "float32", "f64": "float64"}
DTYPE_TOKENS = {v: k for k, v in DTYPES.items()}
LAYOUTS = ("nc", "ncl", "nlc", "nchw", "nhwc", "ncdhw", "ndhwc")
MODES = ("train", "infer", "frozen")


class BadDescriptor(ValueError):
    pass


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

    def __post_init__(self):
        if self.mode not in MODES:
            raise BadDescriptor(f"mode {self.mode!r} not in {MODES}")
        if self.dtype not in DTYPES.values():
            raise BadDescriptor(f"dtype {self.dtype!r} not in {tuple(DTYPES.values())}")
        if self.layout not in LAYOUTS:
            raise BadDescriptor(f"layout {self.layout!r} not in {LAYOUTS}")
        if len(self.shape) != len(self.layout):
            raise BadDescriptor(f"shape {self.shape} has rank {len(self.shape)}, layout {self.layout!r} needs {len(self.layout)}")
        if self.steps < 1:
            raise BadDescriptor("steps must be >= 1")
        from .inputs import DISTRIBUTIONS  # local: inputs imports this module
        if self.dist not in DISTRIBUTIONS:
            raise BadDescriptor(f"dist {self.dist!r} not in {sorted(DISTRIBUTIONS)}")

    @property
    def channel_axis(self) -> int:
        return self.layout.index("c")

    @property
    def channels(self) -> int:
        return self.shape[self.channel_axis]

    @property
    def n(self) -> int:
        """Values reduced per channel."""
        out = 1
        for i, s in enumerate(self.shape):
            if i != self.channel_axis:
                out *= s
        return out

    @property
    def id(self) -> str:
        mom = "mcum" if self.momentum is None else f"m{self.momentum!r}"
        parts = [self.mode, DTYPE_TOKENS[self.dtype], self.layout, "x".join(map(str, self.shape)), self.dist,
                 mom, f"e{self.eps!r}", f"k{self.steps}", "aff" if self.affine else "noaff",
                 "trs" if self.track else "notrs"]
        if self.fixed:
            parts.append("fixed")
        parts.append(f"s{self.seed}")
        return "_".join(parts)

    def with_(self, **kw) -> "Case":
        return replace(self, **kw)

    def __str__(self) -> str:
        return self.id


_TOKEN = re.compile(r"^(?P<mode>[a-z]+)_(?P<dt>[a-z0-9]+)_(?P<layout>[a-z]+)_(?P<shape>\d+(?:x\d+)*)_"
                    r"(?P<dist>[a-z0-9.+-]+?)_m(?P<mom>cum|[0-9.e+-]+)_e(?P<eps>[0-9.e+-]+)_k(?P<k>\d+)_"
                    r"(?P<aff>aff|noaff)_(?P<trs>trs|notrs)(?P<fixed>_fixed)?_s(?P<seed>\d+)$")


def parse(descriptor: str) -> Case:
    """The case a descriptor names; ``parse(c.id) == c`` for every case."""
    m = _TOKEN.match(descriptor.strip())
    if not m:
        raise BadDescriptor(f"not a case descriptor: {descriptor!r} (expected e.g. "
                            "'train_f32_nchw_2x3x4x5_normal_m0.1_e1e-05_k3_aff_trs_s0')")
    g = m.groupdict()
    if g["dt"] not in DTYPES:
        raise BadDescriptor(f"unknown dtype token {g['dt']!r} in {descriptor!r}")
    return Case(mode=g["mode"], dtype=DTYPES[g["dt"]], layout=g["layout"],
                shape=tuple(int(s) for s in g["shape"].split("x")), dist=g["dist"],
                momentum=None if g["mom"] == "cum" else float(g["mom"]), eps=float(g["eps"]),
                steps=int(g["k"]), affine=g["aff"] == "aff", track=g["trs"] == "trs",
                fixed=bool(g["fixed"]), seed=int(g["seed"]))
