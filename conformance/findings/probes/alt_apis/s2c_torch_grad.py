# torch.func.grad through functional_call(BatchNorm2d) in train mode when buffers are explicit inputs
import torch
from torch import nn
from torch.func import functional_call, grad, vjp, grad_and_value
torch.manual_seed(0)
C=3; x = torch.randn(4,C,2,2)
m = nn.BatchNorm2d(C).train()
params = {k: v.detach().clone() for k,v in m.named_parameters()}
bufs = {k: v.clone() for k,v in m.named_buffers()}
def loss(p, b, xx):
    return (functional_call(m, (p, b), (xx,)) ** 3).sum()
try:
    g = grad(loss)(params, bufs, x)
    print("grad(loss)(params, bufs, x) OK: dweight", [round(v,4) for v in g["weight"].tolist()])
    print("  bufs updated in place:", bufs["running_mean"].tolist(), int(bufs["num_batches_tracked"]))
except Exception as e:
    print("buffers as non-diff input ERROR:", type(e).__name__, str(e)[:200])
# reference via plain autograd through functional_call
p2 = {k: v.clone().requires_grad_() for k,v in params.items()}
b2 = {k: v.clone() for k,v in m.named_buffers()}
l = loss(p2, b2, x); l.backward()
print("plain autograd through functional_call: dweight", [round(v,4) for v in p2["weight"].grad.tolist()], "bufs updated", b2["running_mean"].tolist())
# grad wrt x with bufs as argument
try:
    gx = grad(loss, argnums=2)(params, bufs, x); print("grad wrt x (bufs as arg) OK", float(gx.abs().sum()))
except Exception as e: print("grad wrt x ERROR", str(e)[:200])
# the module with track_running_stats=False
m3 = nn.BatchNorm2d(C, track_running_stats=False).train()
g = grad(lambda p, xx: (functional_call(m3, p, (xx,))**3).sum())(params, x)
print("track_running_stats=False grad OK", [round(v,4) for v in g["weight"].tolist()])
