import torch, copy
from torch import nn
from torch.func import functional_call, grad, vjp, vmap, replace_all_batch_norm_modules_
torch.set_num_threads(1)
torch.manual_seed(0)
print("torch", torch.__version__)
N,C,H,W = 4,3,2,2
x = torch.randn(N,C,H,W)
n = N*H*W
bm = x.mean((0,2,3)); bvb = x.var((0,2,3), unbiased=False); bvu = x.var((0,2,3), unbiased=True)

print("=== 2. functional_call ===")
m = nn.BatchNorm2d(C)
rm = torch.full((C,), 0.5); rv = torch.full((C,), 2.0); nbt = torch.tensor(7)
w = torch.tensor([1.,2.,3.]); b = torch.tensor([0.1,0.2,0.3])
d = {"weight": w, "bias": b, "running_mean": rm, "running_var": rv, "num_batches_tracked": nbt}
m.train()
ids = {k: id(v) for k,v in d.items()}
y = functional_call(m, d, (x,))
print("type(out)", type(y).__name__, tuple(y.shape))
print("supplied running_mean after", rm.tolist(), "expected 0.9*0.5+0.1*mean", (0.9*0.5+0.1*bm).tolist())
print("supplied running_var after", rv.tolist(), "expected unbiased", (0.9*2+0.1*bvu).tolist())
print("supplied nbt after", int(nbt), "module's own buffers untouched:", m.running_mean.tolist(), m.running_var.tolist(), int(m.num_batches_tracked))
ref = (x - bm[None,:,None,None]) / torch.sqrt(bvb[None,:,None,None] + 1e-5) * w[None,:,None,None] + b[None,:,None,None]
print("train out uses batch stats (biased var): max err", float((y-ref).abs().max()))
m.eval()
rm2, rv2 = rm.clone(), rv.clone()
ye = functional_call(m, {**d}, (x,))
refe = (x - rm2[None,:,None,None]) / torch.sqrt(rv2[None,:,None,None] + 1e-5) * w[None,:,None,None] + b[None,:,None,None]
print("eval out uses supplied running stats: max err", float((ye-refe).abs().max()), "buffers unchanged", bool(torch.equal(rm, rm2) and torch.equal(rv, rv2)))
# partial dict: only params; buffers from module
m2 = nn.BatchNorm2d(C); m2.train()
y3 = functional_call(m2, {"weight": w, "bias": b}, (x,))
print("params-only dict: module's own running_mean updated ->", m2.running_mean.tolist())

# grad through functional_call in train mode
m.train()
rm = torch.zeros(C); rv = torch.ones(C); nbt = torch.tensor(0)
params = {"weight": w.clone(), "bias": b.clone()}
bufs = {"running_mean": rm, "running_var": rv, "num_batches_tracked": nbt}
def loss(p, xx):
    return (functional_call(m, (p, bufs), (xx,)) ** 3).sum()
try:
    g = grad(loss)(params, x)
    print("torch.func.grad train OK: dweight", g["weight"].tolist())
    print("  buffers after grad call (updated in place?)", rm.tolist(), int(nbt))
except Exception as e:
    print("torch.func.grad train ERROR:", type(e).__name__, str(e)[:300])
# compare with autograd
pw = w.clone().requires_grad_(); pb = b.clone().requires_grad_()
l2 = (nn.functional.batch_norm(x, None, None, pw, pb, True) ** 3).sum(); l2.backward()
print("  autograd dweight", pw.grad.tolist())
try:
    rm.zero_(); rv.fill_(1.0); nbt.zero_()
    gx = grad(loss, argnums=1)(params, x)
    print("grad wrt x train OK, buffers updated:", rm.tolist())
except Exception as e:
    print("grad wrt x train ERROR:", type(e).__name__, str(e)[:300])
try:
    rm.zero_(); rv.fill_(1.0); nbt.zero_()
    out, fn = vjp(lambda xx: functional_call(m, (params, bufs), (xx,)), x)
    (vx,) = fn(torch.ones_like(out))
    print("vjp train OK: sum|vjp|", float(vx.abs().sum()), "(should be ~0 for ones cotangent)", "buffers updated:", rm.tolist())
except Exception as e:
    print("vjp train ERROR:", type(e).__name__, str(e)[:300])
m.eval()
try:
    g = grad(loss, argnums=1)(params, x)
    print("grad eval OK, |g|", float(g.abs().sum()))
except Exception as e:
    print("grad eval ERROR:", type(e).__name__, str(e)[:300])
# vmap with running stats
m.train()
try:
    vmap(lambda xx: functional_call(m, (params, bufs), (xx,)), in_dims=0)(x.unsqueeze(1).expand(N,2,C,H,W).contiguous())
    print("vmap train with running stats OK")
except Exception as e:
    print("vmap train with running stats ERROR:", type(e).__name__, str(e)[:250])

print("=== 3. replace_all_batch_norm_modules_ ===")
net = nn.Sequential(nn.Conv2d(C,C,1), nn.BatchNorm2d(C))
net[1].running_mean.fill_(5.0)
r = replace_all_batch_norm_modules_(net)
bn = net[1]
print("returns same obj", r is net, "track_running_stats", bn.track_running_stats, "running_mean", bn.running_mean, "running_var", bn.running_var, "nbt", bn.num_batches_tracked)
print("buffers now:", dict(bn.named_buffers()), "state_dict keys", list(bn.state_dict().keys()))
bn.eval()
ye = bn(x)
refb = (x - bm[None,:,None,None]) / torch.sqrt(bvb[None,:,None,None]+1e-5)
print("eval() after replace uses batch stats: max err", float((ye-refb).abs().max()))
try:
    g = vmap(lambda xx: bn(xx.unsqueeze(0)).sum(), in_dims=0)(x)
    print("vmap over BN after replace OK (per-sample normalization)")
except Exception as e:
    print("vmap after replace ERROR", e)

print("=== 4. SyncBatchNorm w/o process group ===")
print("dist available", torch.distributed.is_available(), "initialized", torch.distributed.is_available() and torch.distributed.is_initialized())
s = nn.SyncBatchNorm(C); s.train()
ys = s(x)
print("SyncBN train == F.batch_norm batch stats:", float((ys-refb).abs().max()), "running_var", s.running_var.tolist(), "expected", (0.9+0.1*bvu).tolist())
try:
    y1d = nn.SyncBatchNorm(C)(torch.randn(5,C)); print("SyncBN 2-D input OK", tuple(y1d.shape))
except Exception as e: print("SyncBN 2D ERROR", e)
try:
    nn.SyncBatchNorm(C)(torch.randn(1,C)); print("SyncBN batch 1 2D OK?!")
except Exception as e: print("SyncBN N=1 2D:", type(e).__name__, str(e)[:120])
# convert_sync_batchnorm
cs = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(C)))
print("convert_sync_batchnorm ->", type(cs[0]).__name__)

print("=== 4b. low-level ops ===")
def fresh(): return torch.zeros(C), torch.ones(C)
rm, rv = fresh()
o = torch.nn.functional.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)
print("F.batch_norm -> Tensor; rm", rm.tolist())
rm, rv = fresh()
o = torch.batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5, False)
print("torch.batch_norm(input,weight,bias,rm,rv,training,momentum,eps,cudnn_enabled) ->", type(o).__name__, "rm", rm.tolist())
rm, rv = fresh()
o, sm, si = torch.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)
print("native_batch_norm train -> (out, save_mean, save_invstd):", sm.tolist(), si.tolist())
print("   save_invstd == 1/sqrt(biased var+eps):", float((si - 1/torch.sqrt(bvb+1e-5)).abs().max()), "rm in place", rm.tolist(), "rv", rv.tolist())
rm, rv = fresh()
o, sm, si = torch.native_batch_norm(x, w, b, rm, rv, False, 0.1, 1e-5)
print("native_batch_norm eval -> save_mean", sm.shape, sm.tolist(), "save_invstd", si.tolist())
rm, rv = fresh()
outs = torch.ops.aten._native_batch_norm_legit_functional(x, w, b, rm, rv, True, 0.1, 1e-5)
print("_legit_functional returns", len(outs), "tensors; shapes", [tuple(t.shape) for t in outs])
print("   new_rm", outs[3].tolist(), "new_rv", outs[4].tolist(), "input rm untouched", rm.tolist(), rv.tolist())
print("   new_rv == 0.9*1+0.1*unbiased:", float((outs[4]-(0.9+0.1*bvu)).abs().max()))
outs = torch.ops.aten._native_batch_norm_legit_no_training(x, w, b, torch.full((C,),0.5), torch.full((C,),2.), 0.1, 1e-5)
print("_legit_no_training returns", len(outs), [tuple(t.shape) for t in outs], "out err", float((outs[0] - ((x-0.5)/torch.sqrt(torch.tensor(2.+1e-5))*w[None,:,None,None]+b[None,:,None,None])).abs().max()))
rm, rv = fresh()
outs = torch.ops.aten._native_batch_norm_legit(x, w, b, rm, rv, True, 0.1, 1e-5)
print("_native_batch_norm_legit (training, in-place) returns", len(outs), "rm", rm.tolist())
outs = torch.ops.aten._native_batch_norm_legit.no_stats(x, w, b, True, 0.1, 1e-5)
print("_native_batch_norm_legit.no_stats returns", len(outs), "save_mean", outs[1].tolist())
# no_stats with training=False SEGFAULTS on CPU -> see s2b_segfault.sh
# batch_norm_update_stats / batch_norm_stats
try:
    mu, var = torch.batch_norm_update_stats(x, torch.zeros(C), torch.ones(C), 0.1)
    print("torch.batch_norm_update_stats returns (mean, biased var?)", float((var - bvb).abs().max()), float((var-bvu).abs().max()))
except Exception as e: print("batch_norm_update_stats ERROR", str(e)[:150])
# eps check
try:
    torch.nn.functional.batch_norm(x, None, None, training=True, eps=0.0); print("F.batch_norm eps=0 training OK")
except Exception as e: print("F.batch_norm eps=0 training:", type(e).__name__, e)
o = torch.batch_norm(x, None, None, None, None, True, 0.1, 0.0, False); print("torch.batch_norm eps=0 training OK (no python check)")
# momentum=None via functional -> ?
try:
    rm, rv = fresh(); torch.nn.functional.batch_norm(x, rm, rv, training=True, momentum=None); print("F.batch_norm momentum=None ok; rm", rm.tolist())
except Exception as e: print("F.batch_norm momentum=None:", type(e).__name__, str(e)[:150])

print("=== offset test: x = 1e4 + N(0,1) ===")
xo = (1e4 + torch.randn(64, C, 4, 4, dtype=torch.float64)).float()
x64 = xo.double()
t_m = x64.mean((0,2,3)); t_vb = x64.var((0,2,3), unbiased=False); t_vu = x64.var((0,2,3), unbiased=True)
for name, fn in [
    ("F.batch_norm", lambda rm, rv: (torch.nn.functional.batch_norm(xo, rm, rv, None, None, True, 1.0, 1e-5), None, None)),
    ("native_batch_norm", lambda rm, rv: torch.native_batch_norm(xo, None, None, rm, rv, True, 1.0, 1e-5)),
]:
    rm, rv = torch.zeros(C), torch.ones(C)
    out = fn(rm, rv)
    print(name, "momentum=1: rv", rv.tolist(), "true unbiased", t_vu.tolist(), "rel err", ((rv.double()-t_vu)/t_vu).abs().max().item(), "out std", out[0].double().std((0,2,3)).tolist())
outs = torch.ops.aten._native_batch_norm_legit_functional(xo, None, None, torch.zeros(C), torch.ones(C), True, 1.0, 1e-5)
print("_legit_functional momentum=1 rv", outs[4].tolist(), "invstd", outs[2].tolist(), "true invstd", (1/torch.sqrt(t_vb+1e-5)).tolist())
