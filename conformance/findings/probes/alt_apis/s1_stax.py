# stax.BatchNorm: params only, no running stats; standardize(fast, one-pass) over axis=(0,1,2)
import numpy as np, jax, jax.numpy as jnp
from jax.example_libraries import stax
rng = np.random.default_rng(0)
x = rng.standard_normal((4, 3, 3, 5)).astype(np.float32)  # NHWC, channel last
init, apply = stax.BatchNorm()
out_shape, params = init(jax.random.PRNGKey(0), x.shape)
print("params shapes", [p.shape for p in params], "out_shape", out_shape)
y = apply(params, jnp.asarray(x))
m = x.mean((0,1,2)); v = x.var((0,1,2))
ref = (x - m) / np.sqrt(v + 1e-5)
print("max|y-ref(biased var, axes 0,1,2)|", float(np.abs(np.asarray(y) - ref).max()))
# mode kwarg ignored:
y2 = apply(params, jnp.asarray(x), mode='test', rng=jax.random.PRNGKey(1))
print("mode='test' identical:", bool(np.array_equal(np.asarray(y), np.asarray(y2))))
# single sample: batch of 1 still normalises over H,W
y1 = apply(params, jnp.asarray(x[:1]))
print("batch-1 output std per channel", np.asarray(y1).std((0,1,2)).round(4))
# offset test: x = 1e4 + N(0,1)
xo = (1e4 + rng.standard_normal((8, 4, 4, 5))).astype(np.float32)
yo = np.asarray(apply(params, jnp.asarray(xo)))
x64 = xo.astype(np.float64); ref64 = (x64 - x64.mean((0,1,2))) / np.sqrt(x64.var((0,1,2)) + 1e-5)
print("offset 1e4: output std per channel", yo.std((0,1,2)), "max abs err vs float64 two-pass", float(np.abs(yo-ref64).max()))
# eager vs jit
yj = np.asarray(jax.jit(apply)(params, jnp.asarray(xo)))
print("offset 1e4 jit: output std", yj.std((0,1,2)), "max err", float(np.abs(yj-ref64).max()))
# compare against standardize algorithm='stable'
ys = np.asarray(jax.nn.standardize(jnp.asarray(xo), (0,1,2), algorithm='stable'))
print("standardize(stable) max err", float(np.abs(ys-ref64).max()))
# gradient
g = jax.grad(lambda p, x: jnp.sum(apply(p, x)[..., 0] * jnp.arange(x.shape[1])[None,:,None]))(params, jnp.asarray(x))
print("grad beta", np.asarray(g[0]).round(5), "grad gamma", np.asarray(g[1]).round(5))
gx = jax.grad(lambda x: jnp.sum(apply(params, x)**3))(jnp.asarray(x))
# finite-difference check in float64
jax.config.update("jax_enable_x64", True)
x64a = jnp.asarray(x, jnp.float64); p64 = tuple(jnp.asarray(p, jnp.float64) for p in params)
f = lambda x: jnp.sum(apply(p64, x)**3)
gx64 = jax.grad(f)(x64a)
e = np.zeros(x.shape); e[1,2,0,3] = 1e-6
fd = (f(x64a + e) - f(x64a - e)) / 2e-6
print("grad_x fd check:", float(gx64[1,2,0,3]), float(fd))
