"""torch eager CPU backward with NON-CONTIGUOUS 16-bit input.

batch_norm_backward_cpu_template (aten/src/ATen/native/Normalization.cpp) takes the vectorised
float-accumulating kernel (batch_norm_cpu_backward_stub, cpu/batch_norm_kernel.cpp) only when
input and grad_output are both contiguous or channels-last AND have the same suggested memory
format; otherwise it runs a generic TensorIterator loop in scalar_t:
   sum  = at::sum(grad_out, reduce_dims)            -> a scalar_t (16-bit) tensor: dbeta rounded
   k    = (scalar_t) dotp * invstd * invstd / n      -> dotp rounded to 16 bits, then k rounded
   gi   = (x - mean) * k                             -> stored in grad_input (16-bit)
   grad_mean = sum / n                               -> 16-bit
   dx   = (dy - grad_mean - gi) * invstd * w         -> 16-bit intermediate differences
This script measures dbeta / dgamma / dx against float64 for several layouts, and checks the
result bit-for-bit against an emulation of that generic loop."""
import numpy as np
import torch
import torch.nn.functional as F

print("torch", torch.__version__, torch.backends.cpu.get_cpu_capability(), "threads", torch.get_num_threads())
U = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11, torch.float32: 2.0 ** -24, torch.float64: 2.0 ** -53}


def r(t, dt):   # round a float32 tensor to dt and back
    return t.to(dt).to(torch.float32)


def bn(x, dy, dt, affine=True, track=True, training=True):
    C = x.shape[1]
    pdt = torch.float32 if dt in (torch.bfloat16, torch.float16) else dt   # the adapter's param_dtype
    w = torch.linspace(0.5, 1.5, C, dtype=torch.float32).to(pdt).requires_grad_(True) if affine else None
    b = torch.linspace(-0.2, 0.2, C, dtype=torch.float32).to(pdt).requires_grad_(True) if affine else None
    rm = torch.zeros(C, dtype=pdt) if track else None
    rv = torch.ones(C, dtype=pdt) if track else None
    xt = x.detach().requires_grad_(True)
    y = F.batch_norm(xt, rm, rv, w, b, training=training, momentum=0.1, eps=1e-5)
    y.backward(dy)
    return y.detach(), xt.grad, (w.grad if affine else None), (b.grad if affine else None), rm, rv


def ref64(x, dy, affine=True, training=True):
    C = x.shape[1]
    w = torch.linspace(0.5, 1.5, C, dtype=torch.float32).double().requires_grad_(True) if affine else None
    b = torch.linspace(-0.2, 0.2, C, dtype=torch.float32).double().requires_grad_(True) if affine else None
    xt = x.detach().double().contiguous().requires_grad_(True)
    rm, rv = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
    y = F.batch_norm(xt, rm, rv, w, b, training=training, momentum=0.1, eps=1e-5)
    y.backward(dy.double())
    return y.detach(), xt.grad, (w.grad if affine else None), (b.grad if affine else None), rm, rv


def report(label, x, dy, dt, affine=True, track=True, training=True):
    got = bn(x, dy, dt, affine, track, training)
    con = bn(x.contiguous(), dy.contiguous(), dt, affine, track, training)
    ref = ref64(x, dy, affine, training)
    names = ("y", "dx", "dgamma", "dbeta", "running_mean", "running_var")
    parts = []
    for nm, g, c, rf in zip(names, got, con, ref):
        if g is None:
            continue
        eg = (g.double() - rf).abs().max().item()
        ec = (c.double() - rf).abs().max().item()
        parts.append(f"{nm} {eg:.2g}/{ec:.2g}")
    print(f"{label:58s} strides x{tuple(x.stride())} dy{tuple(dy.stride())}: err strided/contiguous: " + ", ".join(parts))
    return got, con, ref


rng = np.random.default_rng(0)
# --- the reported case: bfloat16 (16, 5), Fortran order (strides (1, 16)) -------------------------
xa = rng.standard_normal((16, 5)) * 1.3 + 0.4
dya = rng.standard_normal((16, 5))
for dt in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
    xF = torch.tensor(np.asfortranarray(xa)).to(dt)          # .to keeps strides (preserve_format)
    dyF = torch.tensor(np.asfortranarray(dya)).to(dt)
    print(f"--- {dt}: torch.tensor(fortran array).to(dtype) strides {tuple(xF.stride())}")
    got, con, ref = report(f"{dt} (16,5) F-order x and dy", xF, dyF, dt)
    if dt in (torch.bfloat16, torch.float16):
        print("   dbeta strided", got[3].tolist())
        print("   dbeta contig ", con[3].tolist())
        print("   sum dy (f64) ", dyF.double().sum(0).tolist())
        print("   dt(sum dy)   ", dyF.double().sum(0).to(dt).double().tolist())
    report(f"{dt} (16,5) F-order x, contiguous dy", xF, dyF.contiguous(), dt)
    report(f"{dt} (16,5) contiguous x, F-order dy", xF.contiguous(), dyF, dt)
    report(f"{dt} (16,5) F-order, no affine, no running stats", xF, dyF, dt, affine=False, track=False)
    report(f"{dt} (16,5) F-order, eval mode (running stats)", xF, dyF, dt, training=False)

# --- bit-exact emulation of the generic loop (bfloat16 and float16, 2-D, mixed type) ----------
for dt in (torch.bfloat16, torch.float16):
    xF = torch.tensor(np.asfortranarray(xa)).to(dt)
    dyF = torch.tensor(np.asfortranarray(dya)).to(dt)
    C, n = 5, 16
    w32 = torch.linspace(0.5, 1.5, C, dtype=torch.float32)
    b32 = torch.linspace(-0.2, 0.2, C, dtype=torch.float32)
    out, smean, sinv, *_ = torch.ops.aten.native_batch_norm(xF, w32, b32, torch.zeros(C), torch.ones(C), True, 0.1, 1e-5)
    dx, dg, db = torch.ops.aten.native_batch_norm_backward(dyF, xF, w32, torch.zeros(C), torch.ones(C), smean, sinv,
                                                            True, 1e-5, [True, True, True])
    xf, dyf = xF.float(), dyF.float()
    s16 = r(dyf.double().sum(0).float(), dt)                       # at::sum in scalar_t
    dotp = ((xf - smean) * dyf).double().sum(0).float()            # opmath accumulation (order may differ)
    k16 = r(r(dotp, dt) * sinv * sinv / n, dt)                     # (scalar_t) dotp * invstd * invstd / n
    gi16 = r((xf - smean) * k16, dt)
    gm16 = r(s16 / n, dt)
    dx_em = r(r(r(dyf - gm16, dt) - gi16, dt) * sinv * w32, dt)
    print(f"{dt} emulation: save_mean dtype {smean.dtype}; dbeta == {dt}(sum dy): {torch.equal(db, s16)}; "
          f"dx identical to emulation: {torch.equal(dx.float(), dx_em)} (max diff {(dx.float()-dx_em).abs().max().item():.3g}, "
          f"{int((dx.float()!=dx_em).sum())} of {dx.numel()} differ); dgamma max|.-dotp*invstd| {(dg - dotp*sinv).abs().max().item():.3g}")

# --- ranks and memory formats ------------------------------------------------------------------
print("--- ranks / memory formats (bfloat16, affine, track) ---")
dt = torch.bfloat16
x4 = torch.tensor(rng.standard_normal((4, 8, 3, 5)) * 1.3 + 0.4).to(dt)
dy4 = torch.tensor(rng.standard_normal((4, 8, 3, 5))).to(dt)
x5 = torch.tensor(rng.standard_normal((2, 8, 2, 3, 4)) * 1.3 + 0.4).to(dt)
dy5 = torch.tensor(rng.standard_normal((2, 8, 2, 3, 4))).to(dt)
x3 = torch.tensor(rng.standard_normal((4, 6, 7)) * 1.3 + 0.4).to(dt)
dy3 = torch.tensor(rng.standard_normal((4, 6, 7))).to(dt)
cl, cl3 = torch.channels_last, torch.channels_last_3d
report("4-D contiguous", x4, dy4, dt)
report("4-D channels_last x and dy", x4.contiguous(memory_format=cl), dy4.contiguous(memory_format=cl), dt)
report("4-D channels_last x, contiguous dy (formats differ)", x4.contiguous(memory_format=cl), dy4, dt)
report("4-D contiguous x, channels_last dy (formats differ)", x4, dy4.contiguous(memory_format=cl), dt)
report("4-D NCWH view (transpose(2,3)) x and dy", x4.transpose(2, 3).contiguous().transpose(2, 3), dy4.transpose(2, 3).contiguous().transpose(2, 3), dt)
report("4-D sliced view x[:, :, :, ::1] of a wider tensor", torch.cat([x4, x4], 3)[..., :5], torch.cat([dy4, dy4], 3)[..., :5], dt)
report("5-D channels_last_3d x and dy", x5.contiguous(memory_format=cl3), dy5.contiguous(memory_format=cl3), dt)
report("5-D permuted (0,1,4,3,2) view", x5.permute(0, 1, 4, 3, 2).contiguous().permute(0, 1, 4, 3, 2), dy5.permute(0, 1, 4, 3, 2).contiguous().permute(0, 1, 4, 3, 2), dt)
report("3-D (N,C,L) channels-last-like view (N,L,C).transpose(1,2)", x3.transpose(1, 2).contiguous().transpose(1, 2), dy3.transpose(1, 2).contiguous().transpose(1, 2), dt)
report("3-D (N,C,L) contiguous", x3, dy3, dt)
report("2-D (N,C) with N=1? no: (16,5) C-order", torch.tensor(xa).to(dt), torch.tensor(dya).to(dt), dt)
print("--- float16 channels_last 4-D ---")
report("f16 4-D channels_last x and dy", x4.half().contiguous(memory_format=cl), dy4.half().contiguous(memory_format=cl), torch.float16)
report("f16 4-D channels_last x, contiguous dy", x4.half().contiguous(memory_format=cl), dy4.half(), torch.float16)
