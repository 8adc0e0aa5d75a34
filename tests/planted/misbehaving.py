"""Backends that misbehave in every way a process can: the suite must give each case a
verdict (crashed, timeout, bad-output, raised) and finish the rest of the run."""
from __future__ import annotations

import ctypes
import os
import time

import numpy as np

from tests.planted.backends import NumpyBN


class Segfaults(NumpyBN):
    name = "bad.segfault"

    def run(self, pb, device):
        if pb.mode == "train":
            ctypes.string_at(0)          # SIGSEGV in the worker
        return super().run(pb, device)


class Hangs(NumpyBN):
    name = "bad.hang"

    def run(self, pb, device):
        if pb.mode == "train":
            time.sleep(3600)
        return super().run(pb, device)


class Garbage(NumpyBN):
    name = "bad.garbage"

    def run(self, pb, device):
        out = super().run(pb, device)
        if pb.mode == "train":
            return "not a dict of arrays"
        out["y"] = out["y"][..., :1]     # wrong shape
        return out


class ReturnsNaN(NumpyBN):
    name = "bad.nan"

    def run(self, pb, device):
        out = super().run(pb, device)
        out["y"] = np.full_like(out["y"], np.nan)
        return out


class Raises(NumpyBN):
    name = "bad.raises"

    def run(self, pb, device):
        raise RuntimeError("backend exploded <b>with markup</b>")


class Leaks(NumpyBN):
    name = "bad.leak"
    _hoard: list = []

    def run(self, pb, device):
        self._hoard.append(np.ones(64 * 1024 * 1024 // 8))   # 64 MiB per call, never freed
        return super().run(pb, device)


class ExitsQuietly(NumpyBN):
    name = "bad.exit"

    def run(self, pb, device):
        os._exit(3)
