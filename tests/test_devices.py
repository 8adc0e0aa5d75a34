"""Device enumeration, without a GPU: with CUDA mocked as present, GPU-capable adapters offer
the device, the cuDNN-off variant appears, and the suite's targets include it; without a GPU
device node no framework is imported to ask."""
import subprocess
import sys
from unittest import mock

import pytest

from bn_conformance.adapters import devices
from bn_conformance.adapters.loading import build
from bn_conformance.adapters.protocol import Target
from bn_conformance.adapters.registry import ENTRIES

torch = pytest.importorskip("torch")

TORCH = [e for e in ENTRIES if e.framework == "torch" and e.default]


@pytest.fixture
def gpu_visible(monkeypatch):
    monkeypatch.setenv("BN_ASSUME_GPU", "1")
    devices.gpus_visible.cache_clear()
    yield
    devices.gpus_visible.cache_clear()


def test_cpu_only_machine_offers_cpu_and_no_native_cuda_variant():
    with mock.patch.object(torch.cuda, "is_available", return_value=False):
        names = {e.name: build(e).devices() for e in TORCH}
    assert names["torch.nn"] == ["cpu"] and names["torch.nn.native_cuda"] == []


def test_cuda_machine_offers_cuda_on_every_variant(gpu_visible):
    with mock.patch.object(torch.cuda, "is_available", return_value=True):
        names = {e.name: build(e).devices() for e in TORCH}
    assert names["torch.nn"] == ["cpu", "cuda"]
    assert names["torch.functional"] == ["cpu", "cuda"]
    assert names["torch.nn.native_cuda"] == ["cuda"]


def test_targets_are_adapter_times_device(gpu_visible):
    with mock.patch.object(torch.cuda, "is_available", return_value=True):
        targets = [Target(e.name, d) for e in TORCH for d in build(e).devices()]
    ids = {t.id for t in targets}
    assert {"torch.nn@cpu", "torch.nn@cuda", "torch.nn.native_cuda@cuda"} <= ids
    assert "torch.nn.native_cuda@cpu" not in ids


def test_no_framework_is_imported_to_select_adapters_and_decide_skips():
    """Selecting every default adapter and asking each whether it runs a case imports no
    framework when no GPU is visible (a worker imports only what it runs)."""
    code = ("import sys\n"
            "from bn_conformance.selection import select\n"
            "from bn_conformance.inputs import make_problem\n"
            "from bn_conformance.case import parse\n"
            "sel = select([], [])\n"
            "pb = make_problem(parse('train_f32_nc_16x5_normal_m0.1_e1e-05_k1_aff_trs_s0'))\n"
            "for t in sel.targets:\n"
            "    sel.adapters[t.adapter].supports(pb, t.device)\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'flax', 'haiku', 'equinox', 'keras', 'tf_keras')"
            " if m in sys.modules))\n")
    env = {"CUDA_VISIBLE_DEVICES": ""}
    import os
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=os.environ | env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout


def test_keras3_backends_offer_cuda_and_pin_each_device_in_its_own_worker(gpu_visible):
    from bn_conformance.adapters.keras3 import Keras3
    from bn_conformance.adapters.loading import PerDevice
    from bn_conformance.adapters.registry import BY_NAME
    with mock.patch.object(torch.cuda, "is_available", return_value=True):
        assert Keras3("torch").devices() == ["cpu", "cuda"]
    a = build(BY_NAME["keras3.torch"])
    assert isinstance(a, PerDevice)
    assert a.worker("cuda")._env["KERAS_TORCH_DEVICE"] == "cuda"
    assert a.worker("cpu")._env["KERAS_TORCH_DEVICE"] == "cpu"
    assert Keras3("jax").device_env("cpu") == {"JAX_PLATFORMS": "cpu"}
    assert Keras3("tensorflow").device_env("cpu") == {"CUDA_VISIBLE_DEVICES": ""}


def test_onnxruntime_offers_cuda_where_its_cuda_provider_is_built(gpu_visible):
    ort = pytest.importorskip("onnxruntime")
    from bn_conformance.adapters.onnxruntime import OnnxRuntime
    with mock.patch.object(ort, "get_available_providers", return_value=["CUDAExecutionProvider", "CPUExecutionProvider"]):
        assert OnnxRuntime(15).devices() == ["cpu", "cuda"]
    with mock.patch.object(ort, "get_available_providers", return_value=["CPUExecutionProvider"]):
        assert OnnxRuntime(15).devices() == ["cpu"]


def test_jax_adapters_name_the_nvidia_gpu_cuda(gpu_visible):
    jax = pytest.importorskip("jax")
    from bn_conformance.adapters import _jax
    fake = [mock.Mock(platform="cpu"), mock.Mock(platform="gpu")]
    with mock.patch.object(jax, "devices", return_value=fake):
        assert _jax.jax_devices() == ["cpu", "cuda"]
