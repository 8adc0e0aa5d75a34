"""Inductor's on-disk FX graph cache does not key on the vector ISA that ATEN_CPU_CAPABILITY
selects: a graph compiled natively (AVX-512 code, at::vec) is reused under
ATEN_CPU_CAPABILITY=default, whose build defines no vector ISA, and the C++ compile fails.

    python t7_inductor_cache_isa.py          (runs the four configurations in subprocesses)
"""
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import torch
torch.manual_seed(0)
m = torch.nn.BatchNorm1d(5)
f = torch.compile(m, dynamic=False)
x = torch.randn(16, 5, requires_grad=True)
try:
    f(x).backward(torch.randn(16, 5))
    print("ok")
except Exception as e:
    s = str(e); i = s.find("error:")
    print(type(e).__name__, s[i:i + 60])
"""

with tempfile.TemporaryDirectory() as cache:
    runs = [("native, fresh cache", {}),
            ("ATEN_CPU_CAPABILITY=default, cache from the native run", {"ATEN_CPU_CAPABILITY": "default"}),
            ("ATEN_CPU_CAPABILITY=default, TORCHINDUCTOR_FX_GRAPH_CACHE=0",
             {"ATEN_CPU_CAPABILITY": "default", "TORCHINDUCTOR_FX_GRAPH_CACHE": "0"}),
            ("ATEN_CPU_CAPABILITY=default, an empty cache", {"ATEN_CPU_CAPABILITY": "default"})]
    for i, (label, extra) in enumerate(runs):
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=os.path.join(cache, "empty" if i == 3 else "shared"), **extra)
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True)
        print(f"{label}: {(out.stdout.strip() or out.stderr.strip()[-200:])}")
