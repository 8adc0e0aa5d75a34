"""Backends the suite can run. Each module holds one framework's adapters.

``BUILTIN`` maps adapter names to "module:factory"; a factory returns a list of adapter
objects (variants) or raises ImportError when its framework is not installed.
"""
from __future__ import annotations

import importlib
from functools import lru_cache

from .protocol import Adapter, AdapterInfo, Problem, Target

BUILTIN = {
    "torch": "adapters.pytorch:adapters",
    "tensorflow": "adapters.tensorflow:adapters",   # tf.nn, tf.nn.xla, tf.fused
    "tf_keras": "adapters.tf_keras:adapters",       # tf_keras (layer's own path choice), .nonfused, .xla
    "keras3": "adapters.keras3:adapters",           # keras3.{tensorflow,jax,torch}, one worker process each
    "flax": "adapters.flax:adapters",               # flax.{linen,nnx}[.jit][.twopass]
    "haiku": "adapters.haiku:adapters",             # haiku, haiku.jit
    "equinox": "adapters.equinox:adapters",         # equinox.{batch,ema}[.jit]
    "onnxruntime": "adapters.onnxruntime:adapters", # onnxruntime.opset{9,14,15}
    "torch_compile": "adapters.torch_compile:adapters",  # torch.*.compile (inductor)
}


# adapter-name prefixes of each group, so a name filter loads only the frameworks it can match
PREFIXES = {"torch": ("torch.",), "tensorflow": ("tf.",), "tf_keras": ("tf_keras",), "keras3": ("keras3.",),
            "flax": ("flax.",), "haiku": ("haiku",), "equinox": ("equinox.",), "onnxruntime": ("onnxruntime.",),
            "torch_compile": ("torch.",)}


def groups_for(pattern: str) -> list[str]:
    """Built-in groups whose adapter names a glob pattern could match."""
    head = pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
    return [g for g, prefixes in PREFIXES.items() if any(p.startswith(head) or head.startswith(p) for p in prefixes)]


class AdapterUnavailable(RuntimeError):
    pass


@lru_cache(maxsize=None)
def load_group(group: str) -> tuple:
    module, _, factory = BUILTIN[group].partition(":")
    return tuple(getattr(importlib.import_module(module), factory)())


def available() -> tuple[dict[str, Adapter], dict[str, str]]:
    """(adapters by name, reasons for groups that could not load)."""
    found, missing = {}, {}
    for group in BUILTIN:
        try:
            for a in load_group(group):
                found[a.name] = a
        except ImportError as exc:
            missing[group] = f"{type(exc).__name__}: {exc}"
    return found, missing


def info(a: Adapter) -> AdapterInfo:
    return AdapterInfo(name=a.name, framework=a.framework, version=a.version(), convention=a.convention,
                       devices=list(a.devices()))


__all__ = ["Adapter", "AdapterInfo", "Problem", "Target", "BUILTIN", "available", "info", "load_group"]
