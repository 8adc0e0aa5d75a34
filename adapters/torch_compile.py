"""PyTorch under torch.compile (TorchDynamo + Inductor, CPU: C++ code generated and built
with the system compiler), beside the eager adapters of adapters/pytorch.py.

"torch.nn.compile": torch.compile(nn.BatchNorm{1,2,3}d) -- the same scenario as
adapters.pytorch.NnModule; "torch.functional.compile": torch.compile of a function calling
F.batch_norm -- the scenario of adapters.pytorch.Functional. Conventions: preset
"pytorch", as eager.

Compilation happens once per shape and configuration: compiled objects are cached under
a key of everything the graph specialises on (rank, channels, eps, momentum, affine,
tracking, dtypes, shape, layout, device), with ``dynamic=False`` (static shapes,
https://pytorch.org/docs/stable/generated/torch.compile.html). A cached module is reset to
the case's parameters and buffers before reuse. TorchDynamo's per-code-object recompile
limit (torch/_dynamo/config.py ``recompile_limit = 8``) would otherwise send the 9th
configuration back to eager silently; this module raises it and sets
``fail_on_recompile_limit_hit = True`` so a fallback would raise instead of passing
eager results off as compiled ones. Those are process-wide Dynamo settings.

Inductor's on-disk caches (FX graph cache, AOTAutograd cache) live in a folder per vector ISA
(``<TORCHINDUCTOR_CACHE_DIR or Inductor's default>/aten-cpu-capability-<value or native>``),
so a verdict never depends on what a run under another ISA left there: in torch 2.13 their key
does not include the vector ISA that ATEN_CPU_CAPABILITY selects, and a graph compiled
natively (at::vec code) is reused under ATEN_CPU_CAPABILITY=default and fails to compile
("'at::vec' has not been declared";
conformance/findings/probes/torch_onnx/t7_inductor_cache_isa.py and .out: ok with a fresh
cache or TORCHINDUCTOR_FX_GRAPH_CACHE=0, BackendCompilerFailed with the native run's cache).
Within a run each configuration compiles once (``_MODULES``); a warm cache saves most of
the compile time across runs (README "Speed": cold and warm).
"""
from __future__ import annotations

import os

from .protocol import Problem
from .pytorch import ChannelsLast, Functional, NnModule, _torch
from .scenario import COMPILES

_MODULES: dict = {}
_CACHE_KEYED = False
_FUNCS: dict = {}


def _configure():
    """Process-wide Dynamo settings, set before the first compilation (idempotent)."""
    global _CACHE_KEYED
    if not _CACHE_KEYED:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
        base = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or default_cache_dir()
        isa = os.environ.get("ATEN_CPU_CAPABILITY") or "native"
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(base, f"aten-cpu-capability-{isa}")
        _CACHE_KEYED = True
    import torch._dynamo.config as cfg
    cfg.recompile_limit = 100_000
    cfg.accumulated_recompile_limit = 100_000
    cfg.fail_on_recompile_limit_hit = True


def _key(pb: Problem, device: str, layout: str) -> tuple:
    return (pb.shape, pb.dtype, pb.param_dtype, pb.eps, pb.momentum, pb.affine, pb.track_running_stats,
            device, layout)


class NnCompile(NnModule):
    """torch.compile(nn.BatchNormXd), reused across cases of one shape/configuration."""

    name = "torch.nn.compile"
    _layout_name = "contiguous"

    def module(self, pb: Problem, device: str):
        torch = _torch()
        _configure()
        fresh = super().module(pb, device)
        key = _key(pb, device, self._layout_name)
        cm = _MODULES.get(key)
        if cm is None:
            cm = _MODULES[key] = _FirstCall(torch.compile(fresh, dynamic=False))
        else:
            orig = cm._orig_mod
            with torch.no_grad():
                orig.load_state_dict(fresh.state_dict())
            for p in orig.parameters():
                p.requires_grad_(True)
                p.grad = None
        return cm


class ChannelsLastCompile(NnCompile, ChannelsLast):
    name = "torch.nn.channels_last.compile"
    _layout_name = "channels_last"


class EagerFallback(RuntimeError):
    """torch.compile captured no graph: the layer ran eagerly."""


def _forget() -> None:
    """Drop every compiled module and Dynamo's caches: the next case compiles from scratch
    (Inductor's on-disk cache still serves its builds)."""
    import torch._dynamo
    torch._dynamo.reset()
    _MODULES.clear()
    _FUNCS.clear()


class _FirstCall:
    """A compiled module whose first call (Dynamo tracing and the Inductor build) is timed as
    one compilation; later calls go straight to it.

    A first call that captures no graph ran eagerly, and this adapter raises ``EagerFallback``
    rather than pass eager results off as compiled ones. In torch 2.13 that happens with
    momentum=None: ``float(self.num_batches_tracked)`` (torch/nn/modules/batchnorm.py:192) is a
    graph break (Tensor.item() with capture_scalar_outputs=False), and Dynamo runs the whole
    call of its wrapper frame (torch/_dynamo/external_utils.py:67, ``inner``, shared by every
    compiled module) eagerly. That frame's cache entry then accepts other BatchNorm modules:
    a compiled BatchNorm1d with momentum 0.1 created afterwards captured no graph either, and
    its dgamma equalled eager's bit for bit (finding torch-compile-cumulative-momentum-eager).
    So after a fallback every compiled module and Dynamo's caches are dropped (``_forget``),
    and no case's verdict depends on the cases before it."""

    def __init__(self, compiled):
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "_fresh", True)

    def __call__(self, *args, **kwargs):
        if self._fresh:
            from torch._dynamo.utils import counters
            object.__setattr__(self, "_fresh", False)
            before = counters["stats"]["unique_graphs"]
            out = COMPILES.timed(self._compiled, *args, **kwargs)
            if counters["stats"]["unique_graphs"] == before:
                _forget()
                raise EagerFallback("torch.compile captured no graph on the first call: the layer ran eagerly "
                                    "(a graph break; TORCH_LOGS=graph_breaks shows where)")
            return out
        return self._compiled(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._compiled, name)

    def __setattr__(self, name, value):
        setattr(self._compiled, name, value)


def _bn(x, rm, rv, w, b, training: bool, momentum: float, eps: float):
    return _torch().nn.functional.batch_norm(x, rm, rv, w, b, training=training, momentum=momentum, eps=eps)


class FunctionalCompile(Functional):
    """torch.compile of F.batch_norm, through Functional's ``batch_norm`` hook."""

    name = "torch.functional.compile"

    def batch_norm(self, pb: Problem):
        _configure()
        key = _key(pb, "any", "functional")   # Dynamo guards on device itself
        if key not in _FUNCS:
            _FUNCS[key] = _FirstCall(_torch().compile(_bn, dynamic=False))
        return _FUNCS[key]
