"""Validation of what an adapter returns, before any comparison.

``validate`` accepts a dict whose keys are output names (``vocab.OUTPUTS``) and whose values
are real floating-point arrays (float16, bfloat16, float32, float64) of the shape the case
asks for; ``None`` values count as absent. Anything else (a non-dict, an unknown name,
complex, integer, boolean, string or object values, a wrong shape, a scalar, results larger
than ``max_bytes``) makes the case ``bad-output`` with the reason.

The byte limit: the outputs of a case are at most nine arrays of the input's size per step in
float64, so 16 float64 copies of the input over every step plus 64 MiB leaves room for any
honest adapter and bounds what a broken one can make the suite hold.
"""
from __future__ import annotations

import math

import numpy as np

from .vocab import OUTPUTS


class BadOutput(ValueError):
    pass


def max_bytes(shape: tuple[int, ...], steps: int) -> int:
    return (64 << 20) + 16 * 8 * (steps + 1) * math.prod(shape)


def expected_shape(name: str, shape: tuple[int, ...], steps: int, channels: int) -> tuple[int, ...]:
    per = OUTPUTS[name].per
    if per == "input":
        return (steps,) + tuple(shape)
    if per == "channel":
        return (steps, channels)
    return tuple(shape)


def _float_array(name: str, v) -> np.ndarray:
    if isinstance(v, (str, bytes)):
        raise BadOutput(f"output {name!r} is a {type(v).__name__}, not an array of floating-point numbers")
    try:
        a = np.asarray(v)
    except Exception as exc:  # noqa: BLE001 -- whatever the object does, it is not an array
        raise BadOutput(f"output {name!r} is not an array ({type(exc).__name__}: {exc})") from None
    kind, dtname = a.dtype.kind, a.dtype.name
    if not (kind == "f" or dtname == "bfloat16"):
        what = {"c": "complex", "i": "integer", "u": "unsigned integer", "b": "boolean", "U": "string",
                "S": "bytes", "O": "object", "V": "structured", "M": "datetime", "m": "timedelta"}.get(kind, kind)
        raise BadOutput(f"output {name!r} has {what} dtype {a.dtype}; outputs must be real floating-point arrays")
    return a


def validate(raw, shape: tuple[int, ...], steps: int, channels: int, limit: int | None = None) -> dict[str, np.ndarray]:
    """float64 copies of the outputs; raises BadOutput with the reason."""
    if not isinstance(raw, dict):
        raise BadOutput(f"adapter returned {type(raw).__name__}, expected a dict of arrays")
    limit = limit if limit is not None else max_bytes(shape, steps)
    out, total = {}, 0
    for k, v in raw.items():
        if not isinstance(k, str) or k not in OUTPUTS:
            raise BadOutput(f"unknown output {str(k)[:60]!r}; outputs are {list(OUTPUTS)}")
        if v is None:
            continue
        a = _float_array(k, v)
        total += a.nbytes
        if total > limit:
            raise BadOutput(f"outputs exceed {limit} bytes (at {k!r}): more than a case's outputs can be")
        want = expected_shape(k, shape, steps, channels)
        if a.shape != want:
            raise BadOutput(f"output {k!r} has shape {a.shape}, the case needs {want}")
        out[k] = a.astype(np.float64)
    return out
