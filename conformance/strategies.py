"""Hypothesis strategies for cases (array-api-tests style: one strategies module)."""
from __future__ import annotations

from hypothesis import strategies as st

from .case import LAYOUTS, Case

DTYPES = ("float16", "bfloat16", "float32", "float64")
DISTS = ("normal", "offset1e2", "heavy", "const", "tiny", "nan", "huge")


@st.composite
def shapes(draw, layout: str):
    n = draw(st.integers(2, 8))
    c = draw(st.integers(1, 6))
    spatial = [draw(st.integers(1, 5)) for _ in range(len(layout) - 2)]
    return (n, c, *spatial) if layout[1] == "c" else (n, *spatial, c)


@st.composite
def cases(draw, modes=("train", "infer")) -> Case:
    layout = draw(st.sampled_from(LAYOUTS))
    dtype = draw(st.sampled_from(DTYPES))
    dist = draw(st.sampled_from(DISTS + ("offset1e4",) if dtype in ("float32", "float64") else DISTS))
    return Case(
        mode=draw(st.sampled_from(modes)), dtype=dtype, layout=layout, shape=draw(shapes(layout)), dist=dist,
        momentum=draw(st.sampled_from((0.1, 0.3, 0.5, 0.9, 1.0, None))),
        eps=draw(st.sampled_from((1e-5, 1e-3, 0.1))), steps=draw(st.integers(1, 3)),
        affine=draw(st.booleans()), track=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)),
    )
