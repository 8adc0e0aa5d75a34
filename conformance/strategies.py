"""Hypothesis strategies for cases (array-api-tests style: one strategies module).

Everything is drawn from the suite's registries: dtypes (``vocab.DTYPES``), layouts, modes,
supplied-statistics kinds (``vocab.SUPPLIED``), and the distributions flagged "generated"
(``distributions``) that are meaningful for the drawn dtype (with replicas, also those flagged
"replicas"), so a new entry there is drawn without touching this file. Now and then a case
is split across two replicas (synchronised batch norm). Shapes come from the grid's shape classes (``shape_menu``: the
grid's shape of each layout, one sample with several values per channel, 8/16/17/32
channels); with ``explore=True`` (the "thorough" profile) sizes inside each class are drawn
at random as well, which finds more but compiles a new executable for nearly every example.
"""
from __future__ import annotations

from hypothesis import strategies as st

from functools import lru_cache

from . import grid, tiers
from .case import Case
from .distributions import DISTRIBUTIONS
from .vocab import DTYPES, LAYOUTS, MODES, SUPPLIED


def _channel_last(layout: str) -> bool:
    return layout[1] != "c"


def _with(layout: str, n: int, c: int, spatial: list[int]) -> tuple[int, ...]:
    return (n, *spatial, c) if _channel_last(layout) else (n, c, *spatial)


def shape_menu(layout: str) -> list[tuple[int, ...]]:
    """The grid's shape classes for a layout (conformance/grid.py): its usual shape, one
    sample, and the channel counts vectorised kernels specialise on."""
    base = grid.SHAPES[layout]
    ax = layout.index("c")
    spatial = [d for i, d in enumerate(base) if i not in (0, ax)]
    out = [base, _with(layout, 1, base[ax], spatial)]
    out += [_with(layout, 2, c, spatial) for c in (8, 17)]
    return out


@st.composite
def shapes(draw, layout: str, explore: bool = False):
    if not explore:
        return draw(st.sampled_from(shape_menu(layout)))
    n = draw(st.one_of(st.just(1), st.integers(2, 8)))
    c = draw(st.one_of(st.integers(1, 6), st.sampled_from((8, 16, 17, 32))))
    spatial = [draw(st.integers(1, 5)) for _ in range(len(layout) - 2)]
    return _with(layout, n, c, spatial)


@lru_cache(maxsize=None)
def grid_signatures(replicated: bool) -> tuple:
    """(layout, shape, dtype[, replicas]) of the default tier's cases: examples drawn from these
    reuse the executables XLA and Inductor compiled for the grid (a new shape or dtype costs
    a compilation per compiling adapter)."""
    out = set()
    for c in tiers.all_cases("default"):
        if bool(c.replicas) == replicated and c.n > 1:
            out.add((c.layout, c.shape, c.dtype) + ((c.replicas,) if replicated else ()))
    return tuple(sorted(out))


@st.composite
def cases(draw, modes=tuple(MODES), explore: bool = False) -> Case:
    mode = draw(st.sampled_from(tuple(modes)))
    replicated = mode in ("train", "infer") and draw(st.integers(0, 3)) == 0          # now and then: replicas
    replicas = None
    if explore:
        layout, dtype = draw(st.sampled_from(LAYOUTS)), draw(st.sampled_from(tuple(DTYPES)))
        shape = draw(shapes(layout, explore))
        if replicated and shape[0] >= 2:
            cut = draw(st.integers(1, shape[0] - 1))
            replicas = (cut, shape[0] - cut)
    else:
        sig = draw(st.sampled_from(grid_signatures(replicated)))
        layout, shape, dtype = sig[:3]
        replicas = sig[3] if replicated else None
    dists = tuple(n for n, d in DISTRIBUTIONS.items() if d.has("generated") and dtype in d.dtypes)
    if replicas:
        dists += tuple(n for n, d in DISTRIBUTIONS.items() if d.has("replicas") and dtype in d.dtypes)
    track = draw(st.booleans())
    stats = None
    if track and mode != "fresh" and draw(st.integers(0, 4)) == 0:       # now and then: supplied statistics
        stats = draw(st.sampled_from(tuple(SUPPLIED)))
    return Case(
        mode=mode, dtype=dtype, layout=layout, shape=shape, dist=draw(st.sampled_from(dists)), replicas=replicas,
        momentum=draw(st.sampled_from((0.1, 0.3, 0.5, 0.9, 1.0, None))),
        eps=draw(st.sampled_from((1e-5, 1e-3, 0.1))), steps=1 if mode == "fresh" else draw(st.integers(1, 3)),
        affine=draw(st.booleans()), track=track, stats=stats, seed=draw(st.integers(0, 2 ** 16)),
        init_train=mode == "fresh" and draw(st.booleans()),
    )
