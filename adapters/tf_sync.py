"""Synchronised (cross-replica) batch norm in TensorFlow's Keras layers:
``BatchNormalization(synchronized=True)`` of Keras 3 (tensorflow backend) and of tf-keras,
under ``tf.distribute.MirroredStrategy`` over logical CPU devices.

TensorFlow fixes its logical devices when its runtime starts
(https://www.tensorflow.org/api_docs/python/tf/config/set_logical_device_configuration:
"cannot be modified after being initialized"), so these variants run in their own worker
process (adapters/registry.py ``worker_env``: BN_TF_LOGICAL_CPUS=8) where ``_tf`` splits
the host CPU into that many logical devices before anything else touches TensorFlow, and
only on "cpu". A case with R replicas uses ``MirroredStrategy`` over the first R of them.

One call, as a data-parallel Keras user writes a custom training step
(https://www.tensorflow.org/tutorials/distribute/custom_training):
  * the layer is created under ``strategy.scope()`` (synchronized=True, the case's axis,
    momentum, epsilon, affine and dtype policy: adapters/_keras.py);
  * each replica gets its own shard, of its own size, through
    ``strategy.experimental_distribute_values_from_function`` (unequal shards are native:
    nothing is padded);
  * ``strategy.run`` (inside tf.function) calls the layer under a GradientTape on each
    replica and takes the gradient of sum(y * dy) for that replica's dy: dx comes back
    through the layer's all-reduce; dgamma/dbeta are each replica's local gradients,
    summed here as the optimiser's cross-replica aggregation (SUM) does;
  * y and dx are the replicas' local results concatenated in replica order (the original
    sample order).
Running statistics: every replica's copy is read (``experimental_local_results``);
replica 0's is reported and replicas that disagree raise (adapters/_replicas.py).

Frozen cases keep the Keras idiom (trainable=False: inference mode, no collective).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from . import _replicas as R
from .keras3 import Keras3
from .protocol import Problem
from .scenario import COMPILES, Step, play
from .tf_keras import TfKeras

_STATE: dict = {"tf": None, "strategies": {}}


def _tf():
    """TensorFlow, with the host CPU split into BN_TF_LOGICAL_CPUS logical devices first
    (set only in this adapter's worker; elsewhere nothing is changed)."""
    if _STATE["tf"] is None:
        import tensorflow as tf
        n = int(os.environ.get("BN_TF_LOGICAL_CPUS", "0") or 0)
        if n > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        _STATE["tf"] = tf
    return _STATE["tf"]


def strategy(n: int):
    tf = _tf()
    if n not in _STATE["strategies"]:
        devs = [d.name for d in tf.config.list_logical_devices("CPU")]
        if len(devs) < n:
            raise RuntimeError(f"{n} replicas need {n} logical CPU devices, TensorFlow has {len(devs)}: run in the "
                               "worker (BN_TF_LOGICAL_CPUS=8 before TensorFlow starts)")
        # A user's program holds one strategy; this worker holds one per replica count, and every
        # MirroredStrategy numbers its collective groups from 1 (mirrored_strategy.py
        # _make_collective_ops_with_fallbacks: CollectiveKeys(group_key_start=1 + _collective_key_base)),
        # so a second one over other devices aborts the collective executor for good ("joining a group
        # with size 4, but that group has size 2 (group_key=1)", measured, TF 2.21.0). TensorFlow's own
        # tests give each strategy its own key base the same way.
        cls = tf.distribute.MirroredStrategy
        saved = cls._collective_key_base
        cls._collective_key_base = 10_000 * n
        try:
            _STATE["strategies"][n] = cls(devs[:n])
        finally:
            cls._collective_key_base = saved
    return _STATE["strategies"][n]


class _MirroredSync:
    """The strategy around a Keras layer's hooks (adapters/_keras.py)."""

    sibling = ""
    capabilities = ("forward", "running_stats", "grad", "replicas")
    api = "BatchNormalization(synchronized=True) under tf.distribute.MirroredStrategy"

    def devices(self) -> list[str]:
        return ["cpu"]   # logical CPU devices; never touch TensorFlow in the suite's own process

    def supports(self, pb: Problem, device: str) -> str | None:
        reason = R.only_replicas(pb, self.api, self.sibling)
        if reason:
            return reason
        if device != "cpu":
            return "the replicas are logical CPU devices"
        return super().supports(dataclasses.replace(pb, replicas=None), device)

    def layer_kwargs(self, pb: Problem) -> dict:
        return super().layer_kwargs(pb) | {"synchronized": True}

    def tf_variable(self, v):
        """The tf.distribute variable behind a layer's variable."""
        return v

    # hooks ------------------------------------------------------------------------------------
    def create(self, pb: Problem, device: str):
        self._strategy = strategy(len(pb.replicas))
        # one layer cache per strategy: a layer built under one strategy's scope belongs to it
        caches = self.__dict__.setdefault("_caches", {})
        self._cache = caches.setdefault(len(pb.replicas), {})
        lay = super().create(pb, device)
        lay.strategy = self._strategy
        if lay.fn is None:
            lay.fn = self.compiled(lay.layer)
        return lay

    def build(self, pb: Problem):
        with self._strategy.scope():
            return super().build(pb)

    def compiled(self, layer):
        tf, st = _tf(), self._strategy
        step = self.tf_step

        @tf.function
        def replicated(xd, dyd, training):
            return st.run(lambda x, dy: step(layer, x, dy, training), args=(xd, dyd))
        return replicated

    def step(self, lay, x, dy, training):
        tf, pb, st = _tf(), lay.pb, lay.strategy
        xs = R.split(x, pb)
        dys = R.split(dy if dy is not None else np.zeros(pb.shape), pb)

        def per_replica(parts):
            return st.experimental_distribute_values_from_function(
                lambda ctx: tf.cast(tf.constant(np.array(parts[ctx.replica_id_in_sync_group])), pb.dtype))

        y, dx, dg, db = COMPILES.traced(lay.fn, per_replica(xs), per_replica(dys), training)

        def local(v):
            return [self.to_numpy(t) for t in st.experimental_local_results(v)]

        def total(v):
            return None if v is None else np.sum(local(v), axis=0)

        return Step(np.concatenate(local(y)), np.concatenate(local(dx)), total(dg), total(db))

    def stats(self, lay):
        st = lay.strategy
        out = []
        for name, v in (("moving_mean", lay.layer.moving_mean), ("moving_variance", lay.layer.moving_variance)):
            copies = [self.to_numpy(t) for t in st.experimental_local_results(self.tf_variable(v))]
            out.append(R.agree(name, copies))
        return tuple(out)

    def run(self, pb: Problem, device: str):
        return play(self, pb, device)    # no tf.device scope: the strategy places every replica


class Keras3TfSync(_MirroredSync, Keras3):
    """keras.layers.BatchNormalization(synchronized=True), Keras 3 on TensorFlow (the only
    backend that accepts it: keras/src/layers/normalization/batch_normalization.py raises
    "Argument synchronized=True is only supported with the TensorFlow backend")."""
    sibling = "keras3.tensorflow"

    def __init__(self):
        super().__init__(backend="tensorflow", jit=False)
        self.name = "keras3.tensorflow.sync"

    def keras(self):
        _tf()
        return super().keras()

    def tf_variable(self, v):
        return v.value       # keras.Variable -> its tf.distribute MirroredVariable


class TfKerasSync(_MirroredSync, TfKeras):
    """tf_keras.layers.BatchNormalization(synchronized=True): always the non-fused path
    (tf_keras/src/layers/normalization/batch_normalization.py: synchronized=True with
    fused=True raises; fused=None becomes False)."""
    name = "tf_keras.sync"
    sibling = "tf_keras"

    def keras(self):
        _tf()
        return super().keras()
