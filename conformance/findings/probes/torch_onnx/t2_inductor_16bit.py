"""torch.compile (Inductor, CPU), 16-bit training: the decomposition native_batch_norm_helper
(torch/_decomp/decompositions.py:2150-2152) casts save_mean / save_rstd to the INPUT dtype on CPU;
the backward decomposition (native_batch_norm_backward, :2645-2693) then forms dx and dgamma from
these 16-bit-rounded statistics. Shown by: compiled dgamma == eager-formula dgamma computed from
rounded statistics, and != the eager kernel's (float32 statistics)."""
import numpy as np
import torch

torch.manual_seed(0)
print("torch", torch.__version__, torch.backends.cpu.get_cpu_capability())


def run(mod, x, dy):
    xt = x.clone().requires_grad_(True)
    y = mod(xt)
    y.backward(dy)
    return y.detach(), xt.grad, (mod.weight.grad.clone() if mod.weight is not None else None)


for dt in (torch.bfloat16, torch.float16):
    for affine, track in ((True, True), (False, False)):
        rng = np.random.default_rng(1)
        x = torch.tensor(rng.standard_normal((16, 5)) * 1.5 + 3.0).to(dt)
        dy = torch.tensor(rng.standard_normal((16, 5))).to(dt)
        eager = torch.nn.BatchNorm1d(5, affine=affine, track_running_stats=track)
        comp_mod = torch.nn.BatchNorm1d(5, affine=affine, track_running_stats=track)
        comp_mod.load_state_dict(eager.state_dict())
        comp = torch.compile(comp_mod, dynamic=False)
        ye, dxe, dge = run(eager, x, dy)
        yc, dxc, dgc = run(comp, x, dy)
        # reference in float64
        x64, dy64 = x.double().requires_grad_(True), dy.double()
        ref = torch.nn.BatchNorm1d(5, affine=affine, track_running_stats=track).double()
        yr = ref(x64); yr.backward(dy64)
        # emulation: float32 math, statistics rounded to dt (what the decomposition saves on CPU)
        xf = x.float()
        mean = xf.mean(0); var = xf.var(0, unbiased=False); rstd = torch.rsqrt(var + 1e-5)
        m16, r16 = mean.to(dt).float(), rstd.to(dt).float()
        dyf = dy.float()
        dotp = (dyf * (xf - m16)).sum(0)
        dg_emul = dotp * r16
        proj = (xf - m16) * (dotp / 16 * r16 * r16)
        dx_emul = ((dyf - proj) - dyf.sum(0) / 16) * r16
        line = f"{str(dt):15s} affine={affine} track={track}: "
        line += f"max|y_c - y_ref| {(yc.double()-yr).abs().max().item():.3g} (eager {(ye.double()-yr).abs().max().item():.3g}); "
        line += f"max|dx_c - dx_ref| {(dxc.double()-x64.grad).abs().max().item():.3g} (eager {(dxe.double()-x64.grad).abs().max().item():.3g}); "
        line += f"max|dx_c - emul(dt stats)| {(dxc.double()-dx_emul.to(dt).double()).abs().max().item():.3g}"
        if affine:
            line += (f"; dgamma: max|c - ref| {(dgc.double()-ref.weight.grad).abs().max().item():.3g}, "
                     f"eager {(dge.double()-ref.weight.grad).abs().max().item():.3g}, "
                     f"|c - emul(dt stats)| {(dgc.double()-dg_emul.double()).abs().max().item():.3g}")
        print(line)
