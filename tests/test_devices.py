"""Device enumeration, without a GPU: with CUDA mocked as present, GPU-capable adapters
offer the device, the cuDNN-off variant appears, and the suite's targets include it."""
from unittest import mock

import pytest

torch = pytest.importorskip("torch")

from bn_conformance.adapters import pytorch  # noqa: E402


def test_cpu_only_machine_offers_cpu_and_no_native_cuda_variant():
    with mock.patch.object(torch.cuda, "is_available", return_value=False):
        assert pytorch.NnModule().devices() == ["cpu"]
        assert pytorch.NativeCuda().devices() == []


def test_cuda_machine_offers_cuda_on_every_variant():
    with mock.patch.object(torch.cuda, "is_available", return_value=True):
        names = {a.name: a.devices() for a in pytorch.adapters()}
    assert names["torch.nn"] == ["cpu", "cuda"]
    assert names["torch.functional"] == ["cpu", "cuda"]
    assert names["torch.nn.native_cuda"] == ["cuda"]


def test_targets_are_adapter_times_device():
    from bn_conformance.adapters.protocol import Target
    with mock.patch.object(torch.cuda, "is_available", return_value=True):
        targets = [Target(a.name, d) for a in pytorch.adapters() for d in a.devices()]
    ids = {t.id for t in targets}
    assert {"torch.nn@cpu", "torch.nn@cuda", "torch.nn.native_cuda@cuda"} <= ids
    assert "torch.nn.native_cuda@cpu" not in ids
