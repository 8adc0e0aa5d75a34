"""Is a GPU visible to this process, without importing a framework?

Adapters enumerate GPU devices through their framework (torch.cuda.is_available(),
jax.devices(), tf.config.list_physical_devices("GPU")), which imports it: seconds each, in
every process that only selects adapters or decides skips. Where no GPU device node exists
(/dev/nvidiactl and /dev/nvidia<N> for NVIDIA's driver, /dev/kfd for ROCm) or
CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES hide every device, no framework can see one, and
the adapters answer ["cpu"] without importing anything. Everywhere else they ask the framework.
"""
from __future__ import annotations

import glob
import os
from functools import lru_cache


@lru_cache(maxsize=None)
def gpus_visible() -> bool:
    for var in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"):
        if os.environ.get(var) is not None and os.environ[var].strip() in ("", "-1"):
            return False
    return bool(os.path.exists("/dev/nvidiactl") or glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/kfd")
                or os.environ.get("BN_ASSUME_GPU"))
