"""Shared JAX plumbing for the Flax, Haiku and Equinox adapters: dtype helpers, the
compile cache (``Jit``) and ``JaxHooks``, the scenario's hooks (adapters/scenario.py) for a
framework given as pure functions (``Ops``). Imports no JAX library beyond jax itself.

Precision: x64 is enabled when JAX is first imported here (``jax_()``:
``jax.config.update("jax_enable_x64", True)``), so float64 cases run in float64; float32 cases
keep float32 because every array the adapters create has an explicit dtype. Nothing imports
JAX before an adapter computes: selecting adapters, asking their devices on a machine without
a GPU, and deciding skips (``supports``) import no framework.

Compilation: one executable per distinct argument structure, shapes and dtypes. The
case's values (eps, momentum, gamma, beta, running statistics, inputs) are traced
arguments, never static or closed-over constants, so cases that differ only in those
values share an executable. eps and momentum are passed as Python floats: jax.jit traces
them as weakly typed scalars (https://docs.jax.dev/en/latest/type_promotion.html, "weak
types"), which promote exactly as the Python-float constants a user writes in a
constructor do (a float32 statistic times a weak float stays float32).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from .devices import gpus_visible
from .protocol import Problem
from .scenario import COMPILES, Hooks, Step


@lru_cache(maxsize=None)
def jax_():
    """JAX, imported on first use with 64-bit floats enabled."""
    import jax
    jax.config.update("jax_enable_x64", True)
    return jax


class LazyModule:
    """A module imported on first attribute access (``jax``, ``jnp`` below): the adapter modules
    use them as if imported at the top, and importing an adapter module imports no JAX."""

    def __init__(self, load: Callable):
        self._load = load

    def __getattr__(self, name):
        return getattr(self._load(), name)


jax = LazyModule(jax_)
jnp = LazyModule(lambda: jax_().numpy)


def jdtype(name: str):
    jnp = jax_().numpy
    return jnp.bfloat16 if name == "bfloat16" else jnp.dtype(name)


def to_j(a, dtype: str):
    """A JAX array of ``dtype`` holding ``a``. The suite's values are exact in the case's dtype
    (conformance/inputs.py), so they are converted on the host and transferred; a value the
    dtype cannot hold exactly is converted by JAX, as a user's ``jnp.asarray(a, dtype)``
    would (a device-side conversion compiles once per shape and dtype)."""
    a, dt = np.asarray(a), jdtype(dtype)
    host = a.astype(dt)
    if np.array_equal(host.astype(a.dtype), a, equal_nan=True):
        return jax_().device_put(host)
    return jax_().numpy.asarray(a, dtype=dt)


def to_np(a) -> np.ndarray:
    """float64 NumPy copy of a JAX array, converted on the host: every float dtype widens to
    float64 exactly, and a device-side ``convert_element_type`` would compile one executable
    per shape and dtype (measured: about 35 ms each, a tenth of an adapter's run)."""
    return np.asarray(a).astype(np.float64)


def _sig(a):
    """What an executable specialises on per argument: shape, dtype and weak typing (a weakly
    typed array promotes like a Python scalar, a strong one does not)."""
    if isinstance(a, (float, int)) and not isinstance(a, bool):
        return ((), type(a).__name__ + "-weak")
    return (np.shape(a), jax_().numpy.result_type(a), bool(getattr(a, "weak_type", False)))


class Jit:
    """jax.jit with an explicit executable cache keyed by the arguments' tree structure,
    shapes and dtypes, compiled ahead of time so the compile cost is measured
    (https://docs.jax.dev/en/latest/aot.html: jit(f).lower(*args).compile())."""

    def __init__(self, fn: Callable, label: str):
        self.jitted, self.label, self.exe = jax_().jit(fn), label, {}

    @staticmethod
    def key(args):
        leaves, tree = jax_().tree_util.tree_flatten(args)
        return (tree, tuple(_sig(a) for a in leaves))

    def executable(self, args, key=None):
        key = key or self.key(args)
        exe = self.exe.get(key)
        if exe is None:
            exe = self.exe[key] = COMPILES.timed(lambda: self.jitted.lower(*args).compile())
        return exe

    def __call__(self, *args):
        return self.executable(args)(*args)


class _Fused:
    """Several functions of the same arguments as one executable per signature; where the fused
    function does not trace or compile (one part raising, as equinox's "ema" training step does
    for 16-bit inputs, conformance/findings/equinox.toml), each part gets its own executable, so
    the others still run and the failing one raises its own error."""

    def __init__(self, fns: dict, names, label: str):
        self.names = tuple(names)
        parts = [fns[k] for k in self.names]
        self.both = Jit(lambda *args: tuple(f(*args) for f in parts), f"{label}.{'+'.join(self.names)}")
        self.single = {k: Jit(fns[k], f"{label}.{k}") for k in self.names}
        self.split: set = set()

    def call(self, name: str, args):
        key = Jit.key(args)
        if key not in self.split:
            try:
                exe = self.both.executable(args, key)
            except Exception:
                self.split.add(key)
            else:
                return exe(*args)[self.names.index(name)]
        return self.single[name](*args)


def wrap(fns: dict, names, label: str, jit: bool) -> dict:
    """With ``jit``, the functions ``names`` (which take the same arguments) become ONE
    executable per argument signature computing all of them, each name then reading its part:
    a training step, the inference call and the inference without running statistics of one
    shape share a compilation (measured: one fused compile costs about 0.6 of two separate
    ones, and running the unused half of a small batch norm costs microseconds)."""
    if jit:
        fused = _Fused(fns, names, label)
        for k in fused.names:
            fns[k] = (lambda k: lambda *args: fused.call(k, args))(k)
    return fns


@dataclass
class Ops:
    """One problem's functions. state is opaque (running statistics and what else the
    framework keeps); gradients are taken with respect to x and the parameters."""
    init: Callable[[], Any]                        # -> state, the framework's initial state
    given: Callable[[Any, Any], Any]               # (mean, var) -> state holding these running statistics
    train: Callable[..., tuple]                    # (state, x, dy) -> y, dx, dgamma, dbeta, state
    infer: Callable[..., tuple]                    # (state, x, dy) -> y, dx, dgamma, dbeta
                                                   # (untracked: batch statistics, state unchanged)
    evaluate: Callable[..., Any]                   # (state, x) -> y (inference mode; untracked: batch stats)
    stats: Callable[[Any], tuple]                  # state -> (running_mean, running_var)


class _State:
    def __init__(self, ops: Ops, state, pb: Problem):
        self.ops, self.state, self.pb = ops, state, pb


class JaxHooks(Hooks):
    """The scenario's hooks on ``Ops``; a framework module supplies ``ops(pb)``."""
    family = "jax"
    jit = False

    def ops(self, pb: Problem) -> Ops:
        raise NotImplementedError

    def devices(self) -> list[str]:
        return jax_devices()

    def create(self, pb: Problem, device: str):
        ops = self.ops(pb)
        return _State(ops, ops.init(), pb)

    def load_stats(self, st, mean, var):
        st.state = st.ops.given(mean, var)
        return st

    def forward(self, st, x, dy, training):
        pb = st.pb
        xj = to_j(x, pb.dtype)
        if training:
            y, dx, dg, db, st.state = st.ops.train(st.state, xj, to_j(dy, pb.dtype))
            return Step(y, dx, dg, db), st
        if dy is None:
            return Step(st.ops.evaluate(st.state, xj)), st
        return Step(*st.ops.infer(st.state, xj, to_j(dy, pb.dtype))), st

    def stats(self, st):
        return st.ops.stats(st.state)

    def to_numpy(self, a) -> np.ndarray:
        return to_np(a)

    def run(self, pb: Problem, device: str) -> dict[str, np.ndarray]:
        with jax_().default_device(jax_device(device)):
            return super().run(pb, device)


def common_skips(pb: Problem, api: str) -> str | None:
    if pb.momentum is None:
        return f"{api} has only an exponential moving average: no cumulative average (momentum=None)"
    if pb.mode == "frozen":
        return (f"{api} has no per-layer freeze: JAX users freeze parameters in the optimizer (optax), which "
                "leaves the layer's call unchanged; a training-mode call with frozen parameters is the 'train' "
                "scenario without parameter gradients (measured: batch statistics used, running statistics updated)")
    if pb.replicas:
        return f"{api}: cross-replica statistics need axis_name under pmap/shard_map (not this variant)"
    return None


def jax_devices() -> list[str]:
    """The suite's device names: "cuda" for JAX's "gpu" platform on NVIDIA (jax.devices("gpu")).
    Without a visible GPU (adapters/devices.py) JAX is not imported to ask."""
    if not gpus_visible():
        return ["cpu"]
    return ["cpu"] + (["cuda"] if any(d.platform == "gpu" for d in jax_().devices()) else [])


def jax_device(device: str):
    return jax_().devices("gpu" if device == "cuda" else device)[0]
