"""The built-in adapters, declared once: name, where the class lives, framework, family,
group (the unit that loads together: one framework's module), default or opt-in, the extra
that installs it, and the environment of a worker process where one is needed.

Selection (``--adapter`` globs, ``--all-adapters``), the run header and the report derive
from this table; loading a group imports its module (and so its framework) only when one of
its adapters is selected. Capabilities and devices are the adapter object's own
(``adapters/protocol.py``).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    name: str                  # unique adapter name, e.g. "torch.nn"
    target: str                # "module:attribute" under bn_conformance.adapters: a class or a factory
    framework: str             # the distribution whose version is reported, e.g. "torch"
    family: str                # backend family: torch | tensorflow | jax | onnx | ...
    extra: str                 # pip extra that installs the framework: bn-conformance[<extra>]
    default: bool = True       # False: opt-in (--adapter NAME or --all-adapters), with the reason
    why_opt_in: str = ""
    kwargs: tuple = ()         # keyword arguments for the class, as (key, value) pairs
    worker_env: tuple = ()     # non-empty: run in a worker process with this environment
    requires: tuple = ()       # importable modules the adapter needs (checked without importing)
    groups: int = 1            # pytest-xdist groups its tests are spread over (conformance/plugin.py)

    @property
    def group(self) -> str:
        return self.target.partition(":")[0]


# replicas as logical CPU devices: TensorFlow fixes them when its runtime starts (adapters/tf_sync.py)
_TF_SYNC_ENV = (("BN_TF_LOGICAL_CPUS", "8"),)
# the synchronised variants run only replica cases (the sync area, and the strategies' replica cases)
_SYNC_OPT_IN: dict = {}


def _keras3() -> list[Entry]:
    out = []
    for backend in ("tensorflow", "jax", "torch"):
        env = (("KERAS_BACKEND", backend),) + ((("JAX_ENABLE_X64", "1"),) if backend == "jax" else ())
        family = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
        out.append(Entry(f"keras3.{backend}", "keras3:Keras3", "keras", family, "keras3",
                         kwargs=(("backend", backend), ("jit", False)), worker_env=env,
                         requires=("keras", backend)))
    out.append(Entry("keras3.tensorflow.sync", "tf_sync:Keras3TfSync", "keras", "tensorflow", "keras3", **_SYNC_OPT_IN,
                     worker_env=(("KERAS_BACKEND", "tensorflow"),) + _TF_SYNC_ENV, requires=("keras", "tensorflow")))
    out.append(Entry("keras3.tensorflow.xla", "keras3:Keras3", "keras", "tensorflow", "keras3", default=False,
                     why_opt_in="an XLA compile per shape and configuration (~0.7 s a case) for the same "
                                "tf.nn graph that tf.nn.xla compiles, with the same measured findings",
                     kwargs=(("backend", "tensorflow"), ("jit", True)),
                     worker_env=(("KERAS_BACKEND", "tensorflow"),), requires=("keras", "tensorflow")))
    return out


# replicas as host CPU devices: XLA fixes the device count when JAX starts (sync variants' own worker)
_JAX_SYNC_ENV = (("XLA_FLAGS", "--xla_force_host_platform_device_count=8"), ("JAX_ENABLE_X64", "1"))

_EAGER_JAX = ("eager op-by-op dispatch of the same code the .jit variant compiles "
              "(about 4x slower over the grid, measured)")

ENTRIES: tuple[Entry, ...] = tuple([
    # PyTorch
    Entry("torch.nn", "pytorch:NnModule", "torch", "torch", "torch", requires=("torch",)),
    Entry("torch.nn.channels_last", "pytorch:ChannelsLast", "torch", "torch", "torch", requires=("torch",)),
    Entry("torch.functional", "pytorch:Functional", "torch", "torch", "torch", requires=("torch",)),
    Entry("torch.nn.strided", "pytorch:Strided", "torch", "torch", "torch", requires=("torch",)),
    Entry("torch.nn.native_cuda", "pytorch:NativeCuda", "torch", "torch", "torch", requires=("torch",)),
    # two xdist groups: Inductor's on-disk cache is shared by the workers, so a configuration one
    # worker built the other loads (measured: 0.25 s against about 3 s for a cold build), and the
    # run's costliest adapter cold (about 400 s) no longer sits on one worker
    Entry("torch.nn.compile", "torch_compile:NnCompile", "torch", "torch", "torch", requires=("torch",), groups=2),
    Entry("torch.nn.channels_last.compile", "torch_compile:ChannelsLastCompile", "torch", "torch", "torch",
          default=False, why_opt_in="one Inductor C++ build per shape and configuration, repeating "
                                    "torch.nn.compile for the channels_last memory format", requires=("torch",)),
    Entry("torch.functional.compile", "torch_compile:FunctionalCompile", "torch", "torch", "torch", default=False,
          why_opt_in="one Inductor build per shape for the kernel torch.nn.compile already reaches",
          requires=("torch",)),
    Entry("torch.func.functional_call", "torch_func:FunctionalCall", "torch", "torch", "torch", requires=("torch",)),
    Entry("torch.func.replaced", "torch_func:Replaced", "torch", "torch", "torch", requires=("torch",)),
    # TensorFlow
    Entry("tf.nn", "tensorflow:TfNn", "tensorflow", "tensorflow", "tensorflow", requires=("tensorflow",)),
    Entry("tf.nn.xla", "tensorflow:TfNnXla", "tensorflow", "tensorflow", "tensorflow", requires=("tensorflow",)),
    Entry("tf.fused", "tensorflow:TfFused", "tensorflow", "tensorflow", "tensorflow", requires=("tensorflow",)),
    # tf-keras
    Entry("tf_keras", "tf_keras:TfKeras", "tf_keras", "tensorflow", "tensorflow", requires=("tf_keras", "tensorflow")),
    Entry("tf_keras.nonfused", "tf_keras:TfKerasNonFused", "tf_keras", "tensorflow", "tensorflow",
          requires=("tf_keras", "tensorflow")),
    Entry("tf_keras.xla", "tf_keras:TfKerasXla", "tf_keras", "tensorflow", "tensorflow",
          requires=("tf_keras", "tensorflow")),
    Entry("tf_keras.sync", "tf_sync:TfKerasSync", "tf_keras", "tensorflow", "tensorflow", **_SYNC_OPT_IN,
          worker_env=_TF_SYNC_ENV, requires=("tf_keras", "tensorflow")),
    # Keras 3, one worker process per backend (Keras fixes its backend at import)
    *_keras3(),
    # JAX family
    Entry("flax.linen.jit", "flax:Linen", "flax", "jax", "jax", kwargs=(("jit", True),), requires=("flax",)),
    Entry("flax.nnx.jit", "flax:Nnx", "flax", "jax", "jax", kwargs=(("jit", True),), requires=("flax",)),
    Entry("flax.linen", "flax:Linen", "flax", "jax", "jax", default=False, why_opt_in=_EAGER_JAX,
          requires=("flax",)),
    Entry("flax.nnx", "flax:Nnx", "flax", "jax", "jax", default=False, why_opt_in=_EAGER_JAX, requires=("flax",)),
    Entry("flax.linen.jit.twopass", "flax:Linen", "flax", "jax", "jax", default=False,
          why_opt_in="use_fast_variance=False, a non-default setting; doubles the Flax compile count",
          kwargs=(("jit", True), ("fast_variance", False)), requires=("flax",)),
    Entry("flax.nnx.jit.twopass", "flax:Nnx", "flax", "jax", "jax", default=False,
          why_opt_in="use_fast_variance=False, a non-default setting; doubles the Flax compile count",
          kwargs=(("jit", True), ("fast_variance", False)), requires=("flax",)),
    Entry("haiku.jit", "haiku:Haiku", "dm-haiku", "jax", "jax", kwargs=(("jit", True),), requires=("haiku",)),
    Entry("haiku", "haiku:Haiku", "dm-haiku", "jax", "jax", default=False, why_opt_in=_EAGER_JAX,
          requires=("haiku",)),
    Entry("equinox.batch.jit", "equinox:Equinox", "equinox", "jax", "jax", kwargs=(("mode", "batch"), ("jit", True)),
          requires=("equinox",)),
    Entry("equinox.ema.jit", "equinox:Equinox", "equinox", "jax", "jax", kwargs=(("mode", "ema"), ("jit", True)),
          requires=("equinox",)),
    Entry("equinox.batch", "equinox:Equinox", "equinox", "jax", "jax", default=False, why_opt_in=_EAGER_JAX,
          kwargs=(("mode", "batch"), ("jit", False)), requires=("equinox",)),
    Entry("equinox.ema", "equinox:Equinox", "equinox", "jax", "jax", default=False, why_opt_in=_EAGER_JAX,
          kwargs=(("mode", "ema"), ("jit", False)), requires=("equinox",)),
    Entry("jax.stax", "stax:Stax", "jax", "jax", "jax", requires=("jax",)),
    # JAX family, synchronised batch norm over 8 host CPU devices (replica cases only; adapters/jax_sync.py)
    Entry("flax.linen.sync", "jax_sync:LinenSync", "flax", "jax", "jax", **_SYNC_OPT_IN, worker_env=_JAX_SYNC_ENV,
          requires=("flax",)),
    Entry("flax.nnx.sync", "jax_sync:NnxSync", "flax", "jax", "jax", **_SYNC_OPT_IN, worker_env=_JAX_SYNC_ENV,
          requires=("flax",)),
    Entry("haiku.sync", "jax_sync:HaikuSync", "dm-haiku", "jax", "jax", **_SYNC_OPT_IN, worker_env=_JAX_SYNC_ENV,
          requires=("haiku",)),
    Entry("equinox.batch.sync", "jax_sync:EquinoxSync", "equinox", "jax", "jax", **_SYNC_OPT_IN,
          worker_env=_JAX_SYNC_ENV, requires=("equinox",)),
    # ONNX Runtime
    *[Entry(f"onnxruntime.opset{o}", "onnxruntime:OnnxRuntime", "onnxruntime", "onnx", "onnx",
            kwargs=(("opset", o),), requires=("onnx", "onnxruntime")) for o in (9, 14, 15)],
])

BY_NAME: dict[str, Entry] = {e.name: e for e in ENTRIES}
assert len(BY_NAME) == len(ENTRIES), "duplicate adapter names in the registry"


def matching(pattern: str) -> list[Entry]:
    """Entries whose name matches a glob (``fnmatch``), in declaration order."""
    return [e for e in ENTRIES if fnmatch.fnmatchcase(e.name, pattern)]
