"""torch.compile(nn.BatchNorm1d(momentum=None)) captures no graph and runs eagerly, and a
compiled BatchNorm1d(momentum=0.1) created after it in the same process runs eagerly too.

    python t8_compile_cumulative_eager.py       (each order in a fresh subprocess)

Measured per order: Dynamo's counters (graphs captured by the second module's first call)
and its dgamma error against float64, next to eager PyTorch's. A compiled float16 module
without running statistics keeps 16-bit saved statistics for the backward (finding
torch-inductor-cpu-16bit-saved-stats), so a dgamma equal to eager's means no compiled code ran.
"""
import subprocess
import sys

CHILD = r"""
import sys, torch
from torch._dynamo.utils import counters
torch.manual_seed(0)
x = torch.randn(16, 5, dtype=torch.float16) * 3 + 1
dy = torch.randn(16, 5, dtype=torch.float16)
if sys.argv[1] == "after":
    a = torch.nn.BatchNorm1d(5, momentum=None, affine=False)
    ca = torch.compile(a, dynamic=False)
    g = counters["stats"]["unique_graphs"]
    ca(x.clone().requires_grad_(True)).backward(dy)
    print("momentum=None module: graphs captured", counters["stats"]["unique_graphs"] - g)

def dgamma(compiled):
    b = torch.nn.BatchNorm1d(5, momentum=0.1, track_running_stats=False).eval()
    f = torch.compile(b, dynamic=False) if compiled else b
    g = counters["stats"]["unique_graphs"]
    f(x.clone().requires_grad_(True)).backward(dy)
    return b.weight.grad.double(), counters["stats"]["unique_graphs"] - g

xd, dyd = x.double(), dy.double()
ref = (dyd * (xd - xd.mean(0)) / torch.sqrt(xd.var(0, unbiased=False) + 1e-5)).sum(0)
gc, n = dgamma(True)
ge, _ = dgamma(False)
print(f"momentum=0.1 module: graphs captured {n}; |dgamma - float64| compiled {(gc - ref).abs().max().item():.3g}, "
      f"eager {(ge - ref).abs().max().item():.3g}; compiled == eager: {torch.equal(gc, ge)}")
"""

for order in ("alone", "after"):
    print(f"== {order}" + (" a compiled momentum=None module" if order == "after" else ""))
    out = subprocess.run([sys.executable, "-c", CHILD, order], capture_output=True, text=True)
    print(out.stdout.strip() or out.stderr[-2000:])
