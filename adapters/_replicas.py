"""Shared plumbing of the synchronised (cross-replica) batch-norm adapters: splitting a
case's batch into its replicas' shards (``Problem.replicas``, in sample order), padding
unequal shards to the largest for frameworks whose replicas must hold equal shapes,
putting the outputs back in the original sample order, and checking that every replica
holds the same running statistics.

The reference of a replica case (conformance/grid.py ``_sync``): statistics pooled over
every replica's values, i.e. exactly the whole batch's; y and dx in the original sample
order; dgamma/dbeta summed over the replicas (what a data-parallel optimiser applies); the
running statistics as every replica holds them (replica 0's is reported, and replicas that
disagree make the adapter raise, so the suite records it).
"""
from __future__ import annotations

import numpy as np

from .protocol import Problem

MAX_REPLICAS = 8          # host CPU devices the workers create (XLA_FLAGS / TF logical devices)


def sizes(pb: Problem) -> tuple[int, ...]:
    return tuple(pb.replicas or ())


def equal(pb: Problem) -> bool:
    return len(set(sizes(pb))) == 1


def bounds(pb: Problem) -> list[tuple[int, int]]:
    out, start = [], 0
    for s in sizes(pb):
        out.append((start, start + s))
        start += s
    return out


def split(a, pb: Problem) -> list[np.ndarray]:
    """The replicas' shards of a batch (axis 0), in order."""
    a = np.asarray(a)
    return [a[lo:hi] for lo, hi in bounds(pb)]


def pad(a, pb: Problem) -> tuple[np.ndarray, np.ndarray]:
    """(padded, rows): the batch as R blocks of m = max(shard size) rows, block r holding
    replica r's samples followed by zero rows; ``rows`` (R*m,) marks the real samples."""
    a = np.asarray(a)
    m, R = max(sizes(pb)), len(sizes(pb))
    out = np.zeros((R * m,) + a.shape[1:], a.dtype)
    rows = np.zeros(R * m, bool)
    for r, (lo, hi) in enumerate(bounds(pb)):
        out[r * m:r * m + hi - lo] = a[lo:hi]
        rows[r * m:r * m + hi - lo] = True
    return out, rows


def unpad(a, pb: Problem) -> np.ndarray:
    """The real samples of a padded (R*m, ...) array, back in the original order."""
    a = np.asarray(a)
    m = max(sizes(pb))
    return np.concatenate([a[r * m:r * m + hi - lo] for r, (lo, hi) in enumerate(bounds(pb))])


class ReplicasDisagree(RuntimeError):
    """Synchronised batch norm left different running statistics on different replicas."""


def agree(name: str, per_replica) -> np.ndarray:
    """Replica 0's value of a per-replica state (a sequence or an array with a leading
    replica axis); raises ``ReplicasDisagree`` when another replica holds a different one."""
    vals = [np.asarray(v) for v in per_replica]
    first = vals[0]
    for r, v in enumerate(vals[1:], 1):
        if v.shape != first.shape or not np.array_equal(v, first, equal_nan=True):
            same = v.shape == first.shape
            diff = np.max(np.abs(v.astype(np.float64) - first.astype(np.float64))) if same else "shape"
            raise ReplicasDisagree(f"replicas disagree on {name}: replica {r} differs from replica 0 "
                                   f"(max abs difference {diff}); replica 0 holds {first.ravel()[:4].tolist()}, "
                                   f"replica {r} holds {v.ravel()[:4].tolist()}")
    return first


def only_replicas(pb: Problem, api: str, sibling: str) -> str | None:
    """The skip reason of a sync variant for a case without replicas."""
    if not pb.replicas:
        return (f"{api} is exercised only on replica cases (Case.replicas); "
                f"the non-sync variant {sibling} runs the single-device cases")
    if len(pb.replicas) > MAX_REPLICAS:
        return f"{len(pb.replicas)} replicas: the worker creates {MAX_REPLICAS} host CPU devices"
    return None
