"""torch eager CPU: (a) eps=0 raises in training (and eval without running stats), accepted in eval
with running statistics; (b) 16-bit inputs without weight/bias/running stats keep save_mean /
save_invstd in the input dtype (is_mixed_type false), with any one float32 parameter they are float32."""
import numpy as np
import torch
import torch.nn.functional as F

print("torch", torch.__version__, "cpu capability", torch.backends.cpu.get_cpu_capability(),
      "threads", torch.get_num_threads())

x = torch.randn(16, 5, dtype=torch.float32)
for training, rm in ((True, True), (True, False), (False, True), (False, False)):
    rmean = torch.zeros(5) if rm else None
    rvar = torch.ones(5) if rm else None
    try:
        F.batch_norm(x, rmean, rvar, training=training or not rm, eps=0.0)
        print(f"eps=0 training={training} running_stats={rm}: accepted")
    except Exception as e:  # noqa
        print(f"eps=0 training={training} running_stats={rm}: {type(e).__name__}: {e}")
# module, eval, track_running_stats=False -> bn_training True -> raises
m = torch.nn.BatchNorm1d(5, eps=0.0, track_running_stats=False).eval()
try:
    m(x); print("module eval notrs eps=0: accepted")
except ValueError as e:
    print("module eval notrs eps=0:", e)

# (b) saved statistics dtype by which optional tensors are defined
rng = np.random.default_rng(0)
xn = (rng.standard_normal((2, 5, 5)) * 0.5 + 10.0)    # offset 20x the spread: mean rounding shows
for dt in (torch.bfloat16, torch.float16):
    xt = torch.tensor(xn).to(dt)
    x64 = xt.double()
    mean = x64.mean((0, 2)); var = x64.var((0, 2), unbiased=False)
    yref = (x64 - mean[None, :, None]) / torch.sqrt(var[None, :, None] + 1e-5)
    for label, w, b, rmean, rvar in (
            ("no weight, no running stats", None, None, None, None),
            ("float32 weight+bias", torch.ones(5), torch.zeros(5), None, None),
            ("float32 running stats only", None, None, torch.zeros(5), torch.ones(5))):
        out, smean, sinv, *_ = torch.ops.aten.native_batch_norm(xt, w, b, rmean, rvar, True, 0.1, 1e-5)
        y = F.batch_norm(xt, rmean, rvar, w, b, training=True, eps=1e-5)
        err = (y.double() - yref).abs().max().item()
        ulp = 2.0 ** -8 if dt == torch.bfloat16 else 2.0 ** -11
        print(f"{str(dt):15s} {label:28s}: save_mean dtype {smean.dtype}, save_invstd dtype {sinv.dtype}; "
              f"max|y-yref| = {err:.3g} = {err/ulp:.1f} u_16 (mean[0] exact {mean[0].item():.8f}, saved {smean[0].item():.8f})")
