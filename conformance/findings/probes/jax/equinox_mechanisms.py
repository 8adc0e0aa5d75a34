"""Equinox 0.13.8 eqx.nn.BatchNorm mechanisms (equinox/nn/_batch_norm.py):

1. mode="batch" debias with ones-initialised hidden variance (:158-163 init_hidden = zeros,
   ONES; :249-251 inference divides by 1 - momentum**counter): after k steps from init the
   running variance is the debiased EMA plus momentum**k / (1 - momentum**k).
2. 16-bit input, float32 state/weight (dtype=float32): _stats (:210-216) computes mean and
   variance of the 16-bit y in the 16-bit dtype (jnp.mean upcasts its accumulation but
   rounds the result to 16 bits; (y - mean)**2 is formed in 16 bits), and _norm (:218-222)
   normalises in 16 bits before `out * w + b` promotes to float32.
3. Output dtype: `out * w + b` with float32 w, b (and in inference (y - m) with float32
   running statistics m, v) gives a float32 output for a 16-bit input.
4. mode="ema" training with 16-bit input and float32 state: lax.select(first_time,
   batch_mean (16-bit), mean (float32)) (:238-239) raises TypeError.
5. Empty batch: jnp.mean over 0 values is NaN and enters the hidden EMA.
"""
import warnings
warnings.simplefilter("ignore")
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import equinox as eqx

rng = np.random.default_rng(0)

def run(mode, x, dtype, steps=1, momentum=0.9, inference=False, aff=True):
    bn = eqx.nn.BatchNorm(x.shape[1], axis_name="batch", momentum=momentum, eps=1e-5, dtype=dtype, mode=mode,
                          channelwise_affine=aff)
    st = eqx.nn.State(bn)
    f = jax.vmap(lambda x, s: bn(x, s, inference=inference), axis_name="batch", in_axes=(0, None), out_axes=(0, None))
    for _ in range(steps):
        y, st = f(x, st)
    return bn, st, y

# 1. debias with ones-initialised variance
x = jnp.asarray(rng.normal(0.2, 1.5, (16, 3)), jnp.float32)
bv = np.asarray(x, np.float64).var(0)
for m, k in ((0.9, 1), (0.9, 3), (0.99, 4), (0.5, 4), (0.0, 1)):
    bn, st, _ = run("batch", x, jnp.float32, steps=k, momentum=m)
    c = int(st.get(bn.batch_counter)); hm, hv = st.get(bn.batch_state_index)
    scale = 1 - m ** c if c else 1
    rv = np.asarray(hv, np.float64) / scale
    print(f"debias m={m} k={k}: running_var - batch var = {np.round(rv - bv, 6)}  predicted m^k/(1-m^k) = {m ** k / (1 - m ** k):.6g}")

# 2. and 3. 16-bit statistics and output dtype
for dt in (jnp.bfloat16, jnp.float16):
    x = jnp.asarray(rng.normal(0.4, 1.3, (32, 3)), dt)
    bn, st, y = run("batch", x, jnp.float32)
    xn = np.asarray(x, np.float64)
    hm, hv = st.get(bn.batch_state_index)
    rm = np.asarray(hm, np.float64) / 0.1
    print(f"{jnp.dtype(dt).name}: y dtype {y.dtype}; batch mean from the state {rm}, exact {xn.mean(0)}, "
          f"exact rounded to 16-bit {np.asarray(jnp.asarray(xn.mean(0), dt), np.float64)}")
    _, _, y_noaff = run("batch", x, jnp.float32, aff=False)
    bn_i = eqx.nn.BatchNorm(3, axis_name="batch", momentum=0.9, eps=1e-5, dtype=jnp.float32, mode="batch",
                            channelwise_affine=False)
    st_i = eqx.nn.State(bn_i)
    y_inf, _ = jax.vmap(lambda x, s: bn_i(x, s, inference=True), axis_name="batch", in_axes=(0, None), out_axes=(0, None))(x, st_i)
    print(f"   noaff training output dtype {y_noaff.dtype}; noaff inference output dtype {y_inf.dtype}")
    # 4. ema training in 16-bit
    try:
        run("ema", x, jnp.float32)
        print("   ema training: ok")
    except TypeError as e:
        print(f"   ema training raises TypeError: {str(e).splitlines()[0][:120]}")

# 5. empty batch
bn, st, y = run("batch", jnp.zeros((0, 3), jnp.float32), jnp.float32)
hm, hv = st.get(bn.batch_state_index)
print(f"empty batch: hidden mean {hm}, hidden var {hv}")
