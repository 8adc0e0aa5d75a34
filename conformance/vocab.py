"""One vocabulary for the whole project: dtypes, layouts, modes, outputs, check families
and verdicts. Adapters, the suite and the report all read these tables; a new dtype, output
or verdict is one entry here. Imports NumPy only (ml_dtypes lazily, for bfloat16).

Distributions have their own registry beside the generators (``bn_conformance.distributions``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# -- dtypes ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DType:
    """A floating-point format as the suite uses it.

    name        NumPy/framework spelling ("float16")
    token       the case descriptor's spelling ("f16")
    mantissa    explicit significand bits (IEEE 754-2008 table 3.5; bfloat16: 7)
    emin        exponent of the smallest normal number
    emax        exponent of the largest finite number
    param       dtype of parameters and running statistics for inputs of this dtype: 16-bit
                inputs get float32 parameters (mixed precision as frameworks run it:
                PyTorch's opmath_type, Keras' mixed_* policies, Flax param_dtype)
    carrier     NumPy dtype that carries values of this dtype in a ``Problem``: bfloat16
                values travel in float32 arrays (NumPy has no bfloat16)
    """
    name: str
    token: str
    mantissa: int
    emin: int
    emax: int
    param: str
    carrier: str

    @property
    def unit_roundoff(self) -> float:
        """u = 2^-(p) with p = mantissa + 1 significand bits: half an ulp of 1."""
        return 2.0 ** -(self.mantissa + 1)

    @property
    def tiny(self) -> float:
        """The smallest positive normal number."""
        return 2.0 ** self.emin

    @property
    def max(self) -> float:
        """The largest finite number."""
        return (2.0 - 2.0 ** -self.mantissa) * 2.0 ** self.emax

    @property
    def sixteen_bit(self) -> bool:
        return self.param != self.name

    def numpy(self):
        """The NumPy dtype holding exactly this format (ml_dtypes.bfloat16 for bfloat16)."""
        if self.name == "bfloat16":
            import ml_dtypes
            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype(self.name)


DTYPES: dict[str, DType] = {d.name: d for d in (
    DType("float16", "f16", 10, -14, 15, "float32", "float16"),
    DType("bfloat16", "bf16", 7, -126, 127, "float32", "float32"),
    DType("float32", "f32", 23, -126, 127, "float32", "float32"),
    DType("float64", "f64", 52, -1022, 1023, "float64", "float64"),
)}
DTYPE_BY_TOKEN: dict[str, DType] = {d.token: d for d in DTYPES.values()}


def dtype(name: str) -> DType:
    try:
        return DTYPES[name]
    except KeyError:
        raise KeyError(f"unknown dtype {name!r}; known: {sorted(DTYPES)}") from None


def param_dtype(name: str) -> str:
    """Parameters and running statistics for inputs of dtype ``name``."""
    return dtype(name).param


def round_to(values, name: str) -> np.ndarray:
    """Round float64 values to dtype ``name`` (round to nearest even) and return them in the
    dtype's carrier array type. Values beyond the format's range become +-inf, as IEEE
    rounding says."""
    d = dtype(name)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(values, np.float64).astype(d.numpy()).astype(d.carrier)


# -- layouts and modes -----------------------------------------------------------------------

LAYOUTS = ("nc", "ncl", "nlc", "nchw", "nhwc", "ncdhw", "ndhwc")   # the channel axis is where "c" is
MODES = {
    "train": "K training steps from the framework's initial statistics (or supplied ones), then one "
             "inference call on the last batch",
    "infer": "one inference call with supplied running statistics",
    "frozen": "the framework's idiomatic freeze, then K training-mode calls",
    "fresh": "a layer exactly as the framework creates it, then one inference call (no statistics supplied)",
}

SUPPLIED = {   # running statistics a case supplies (``Case.stats``); "negvar" etc. are invalid ones
    "given": "valid statistics, also as the starting state of training",
    "negvar": "running variance -1 in channel 0 (var + eps < 0: no real normalisation)",
    "zerovar": "running variance 0 in channel 0 (defined while eps > 0)",
    "nanvar": "running variance NaN in channel 0",
    "infvar": "running variance +Inf in channel 0",
    "nanmean": "running mean NaN in channel 0",
}


# -- outputs and check families ----------------------------------------------------------------

@dataclass(frozen=True)
class Output:
    """An array an adapter returns. ``per`` says its shape: "input" (K, *shape),
    "channel" (K, C), "eval" (*shape, one inference call after training)."""
    name: str
    family: str
    per: str
    grad: bool = False
    stat: bool = False          # stored in the parameter/statistics dtype (ULPs counted there)


OUTPUTS: dict[str, Output] = {o.name: o for o in (
    Output("y", "forward", "input"),
    Output("dx", "grad", "input", grad=True),
    Output("dgamma", "grad", "channel", grad=True, stat=True),
    Output("dbeta", "grad", "channel", grad=True, stat=True),
    Output("running_mean", "running", "channel", stat=True),
    Output("running_var", "running", "channel", stat=True),
    Output("y_eval", "eval", "eval"),
    Output("batch_mean", "batch_stats", "channel", stat=True),
    Output("batch_var", "batch_stats", "channel", stat=True),
)}
OUTPUT_NAMES = tuple(OUTPUTS)
GRADS = tuple(n for n, o in OUTPUTS.items() if o.grad)
FAMILIES = ("forward", "eval", "running", "grad", "batch_stats", "property", "parity")
CAPABILITIES = ("forward", "running_stats", "grad")
# declared only by adapters that compute statistics across replicas (synchronised batch norm);
# every other adapter skips replica cases, which on one whole batch would test nothing of it
OPT_IN_CAPABILITIES = ("replicas",)


def family(check_name: str) -> str:
    """The family of a check: an output's family, ``X_dtype`` follows X, properties otherwise."""
    base = check_name[:-len("_dtype")] if check_name.endswith("_dtype") else check_name
    if base in OUTPUTS:
        return OUTPUTS[base].family
    return "parity" if check_name == "outcome" else "property"


# -- verdicts --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    name: str
    failing: bool
    meaning: str


VERDICTS: dict[str, Verdict] = {v.name: v for v in (   # in increasing severity
    Verdict("pass", False, "within tolerance, non-finite pattern identical"),
    Verdict("refused", False, "both the reference and the implementation refuse the input"),
    Verdict("skip", False, "the adapter cannot express the case (with its reason)"),
    Verdict("xfail", False, "a known finding explains every failing check"),
    Verdict("fail", True, "outside tolerance, non-finite pattern differs, or a required output is missing"),
    Verdict("raised", True, "the implementation raised where the reference defines a result"),
    Verdict("accepted", True, "the implementation returned values where the reference refuses"),
    Verdict("bad-output", True, "the adapter returned something that is not the outputs the case asks for"),
    Verdict("timeout", True, "the adapter did not answer within the per-call time limit"),
    Verdict("crashed", True, "the adapter's process died"),
    Verdict("xpass", True, "a known finding no longer reproduces"),
)}
ORDER = tuple(VERDICTS)
FAILING = tuple(n for n, v in VERDICTS.items() if v.failing)
PASSING = ("pass", "refused")


def worst(verdicts) -> str:
    vs = [v for v in verdicts if v in VERDICTS] or ["pass"]
    return max(vs, key=ORDER.index)
