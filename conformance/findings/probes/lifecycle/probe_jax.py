from common import *
import warnings
import jax, jax.numpy as jnp
import flax, flax.linen as nn
from flax import nnx
import haiku as hk
import equinox as eqx
print("jax", jax.__version__, "flax", flax.__version__, "haiku", hk.__version__, "equinox", eqx.__version__)
key = jax.random.PRNGKey(0)
x = jnp.asarray(X2)
m_b, v_b, v_u = batch_stats(X2, -1)
exp_after1 = f"expected 0.01*m={vec(0.01*m_b)} 0.99+0.01*biased var={vec(0.99+0.01*v_b)}"

def tryrun(api, sit, f):
    try:
        report(api, sit, f())
    except Exception as e:
        report(api, sit, "RAISES " + err(e))

# ======================= flax.linen =======================
A = "flax.linen.BatchNorm"
def linen_a():
    bn = nn.BatchNorm(use_running_average=True)
    v = bn.init(key, x)
    y = bn.apply(v, x)
    return f"init(use_running_average=True) batch_stats mean={vec(v['batch_stats']['mean'])} var={vec(v['batch_stats']['var'])}; apply maxdiff vs x/sqrt(1+eps)={np.abs(np.asarray(y)-fresh_expect(X2,1e-5)).max():.3g}"
tryrun(A, "(a)+(b) init & apply in inference mode", linen_a)
def linen_b2():
    bn = nn.BatchNorm()
    v = bn.init(key, x, use_running_average=True)
    return f"call-arg form init(key,x,use_running_average=True): mean={vec(v['batch_stats']['mean'])} var={vec(v['batch_stats']['var'])}"
tryrun(A, "(b) init via call arg", linen_b2)
def linen_d():
    bn = nn.BatchNorm(use_running_average=False)
    v = bn.init(key, x)
    y, upd = bn.apply(v, x, mutable=["batch_stats"])
    return (f"init in TRAIN mode -> batch_stats mean={vec(v['batch_stats']['mean'])} var={vec(v['batch_stats']['var'])} (not updated); "
            f"after 1 apply step mean={vec(upd['batch_stats']['mean'])} var={vec(upd['batch_stats']['var'])}; {exp_after1}")
tryrun(A, "(c)/(d) init train-mode then 1 step", linen_d)
def linen_immut():
    bn = nn.BatchNorm(use_running_average=False)
    v = bn.init(key, x)
    bn.apply(v, x)
    return "no error"
tryrun(A, "train apply without mutable=['batch_stats']", linen_immut)
def linen_none():
    bn = nn.BatchNorm()
    v = bn.init(key, x)
    return "no error"
tryrun(A, "init with use_running_average unspecified", linen_none)

def linen_case(mean, var, eps, train):
    bn = nn.BatchNorm(use_running_average=not train, epsilon=eps)
    v = bn.init(key, x)
    v = {"params": v["params"], "batch_stats": {"mean": jnp.asarray(mean), "var": jnp.asarray(var)}}
    if train:
        y, upd = bn.apply(v, x, mutable=["batch_stats"])
        return per_channel(y, -1) + f" | new mean={vec(upd['batch_stats']['mean'])} var={vec(upd['batch_stats']['var'])}"
    return per_channel(bn.apply(v, x), -1)

# ======================= flax.nnx =======================
B = "flax.nnx.BatchNorm"
def nnx_a():
    bn = nnx.BatchNorm(3, rngs=nnx.Rngs(0))
    s = f"ctor default use_running_average={bn.use_running_average} momentum={bn.momentum} eps={bn.epsilon}; mean={vec(bn.mean[...])} var={vec(bn.var[...])}; "
    y = bn(x, use_running_average=True)
    s += f"inference maxdiff vs x/sqrt(1+eps)={np.abs(np.asarray(y)-fresh_expect(X2,1e-5)).max():.3g}; state unchanged mean={vec(bn.mean[...])} var={vec(bn.var[...])}"
    return s
tryrun(B, "(a) fresh inference", nnx_a)
def nnx_c():
    bn = nnx.BatchNorm(3, rngs=nnx.Rngs(0))
    bn(x)  # default = training
    return f"after bn(x) (default mode) mean={vec(bn.mean[...])} var={vec(bn.var[...])}; {exp_after1}"
tryrun(B, "(c) 1 step", nnx_c)
def nnx_eval():
    bn = nnx.BatchNorm(3, rngs=nnx.Rngs(0))
    if hasattr(bn, "eval"):
        bn.eval()
    y = bn(x)
    return f"after .eval(): use_running_average={bn.use_running_average} mean={vec(bn.mean[...])} var={vec(bn.var[...])}"
tryrun(B, "eval() toggle", nnx_eval)

def nnx_case(mean, var, eps, train):
    bn = nnx.BatchNorm(3, epsilon=eps, rngs=nnx.Rngs(0))
    bn.mean[...] = jnp.asarray(mean); bn.var[...] = jnp.asarray(var)
    y = bn(x, use_running_average=not train)
    s = per_channel(y, -1)
    if train:
        s += f" | new mean={vec(bn.mean[...])} var={vec(bn.var[...])}"
    return s

# ======================= haiku =======================
H = "haiku.BatchNorm(decay_rate=0.99)"
def hk_fn(x, is_training):
    return hk.BatchNorm(create_scale=True, create_offset=True, decay_rate=0.99)(x, is_training)
hkf = hk.transform_with_state(hk_fn)
def st(s):
    return "; ".join(f"{k.split('/')[-1]}: " + ", ".join(f"{n}={vec(a)}" for n, a in d.items()) for k, d in s.items())
def hk_b():
    p, s = hkf.init(key, x, is_training=False)
    return st(s)
tryrun(H, "(b) init with is_training=False", hk_b)
def hk_d():
    p, s = hkf.init(key, x, is_training=True)
    out = "init(is_training=True) state: " + st(s)
    y, s2 = hkf.apply(p, s, None, x, is_training=False)
    out += f" || (a) inference right after init: maxdiff vs x/sqrt(1+eps)={np.abs(np.asarray(y)-fresh_expect(X2,1e-5)).max():.3g}, maxdiff vs batch-normalised={np.abs(np.asarray(y)-expected_inference(X2,m_b,v_b,1e-5,-1)).max():.3g}"
    y, s3 = hkf.apply(p, s, None, x, is_training=True)
    out += " || (c) after 1 training apply: " + st(s3) + f" [batch mean={vec(m_b)} biased var={vec(v_b)}]"
    return out
tryrun(H, "(d) init with is_training=True", hk_d)
def hk_zero_state():
    p, s = hkf.init(key, x, is_training=True)
    s = jax.tree_util.tree_map(jnp.zeros_like, s)
    y, _ = hkf.apply(p, s, None, x, is_training=False)
    return "inference with all-zero state (counter 0, hidden 0, average 0): " + per_channel(y, -1)
tryrun(H, "(e) inference with zeroed state", hk_zero_state)
def ema_fn(v, update):
    ema = hk.ExponentialMovingAverage(0.99, zero_debias=True)
    if update:
        return ema(v)
    return ema.average
emaf = hk.transform_with_state(ema_fn)
def hk_ema0():
    p, s = emaf.init(None, jnp.ones(3), False)
    return str(s)
tryrun("haiku.ExponentialMovingAverage(zero_debias)", "(e) read .average before any update (init)", hk_ema0)
def hk_ema1():
    p, s = emaf.init(None, jnp.ones(3) * 2, True)
    out = "init via update: " + st(s)
    r, s2 = emaf.apply(p, s, None, jnp.ones(3) * 2, False)
    out += f" | .average read after init = {vec(r)}"
    r, s3 = emaf.apply(p, s, None, jnp.ones(3) * 4, True)
    out += f" | 1st update(4.0) returns {vec(r)} state " + st(s3)
    return out
tryrun("haiku.ExponentialMovingAverage(zero_debias)", "(e) init via update then read", hk_ema1)
def hk_ema_init():
    def f():
        ema = hk.ExponentialMovingAverage(0.99, zero_debias=True)
        ema.initialize((3,))
        return ema.average
    g = hk.transform_with_state(f)
    p, s = g.init(None)
    r, _ = g.apply(p, s, None)
    return f"initialize() then average = {vec(r)}; state " + st(s)
tryrun("haiku.ExponentialMovingAverage(zero_debias)", "(e) initialize() then read", hk_ema_init)

def hk_case(mean, var, eps, train):
    def fn(x, is_training):
        return hk.BatchNorm(True, True, decay_rate=0.99, eps=eps)(x, is_training)
    f = hk.transform_with_state(fn)
    p, s = f.init(key, x, is_training=True)
    # supplied running statistics = 'average'; hidden consistent with counter=1000 (debias ~1); counter=1000
    s = {k: dict(v) for k, v in s.items()}
    for k in s:
        if k.endswith("mean_ema"):
            val = jnp.asarray(mean)
        else:
            val = jnp.asarray(var)
        s[k]["average"] = val
        s[k]["hidden"] = val * (1 - 0.99 ** 1000)
        s[k]["counter"] = jnp.asarray(1000, jnp.int32)
    y, s2 = f.apply(p, s, None, x, is_training=train)
    out = per_channel(y, -1)
    if train:
        out += " | new " + st(s2)
    return out

# ======================= equinox =======================
def eqx_make(mode, eps=1e-5):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eqx.nn.make_with_state(eqx.nn.BatchNorm)(3, "batch", eps=eps, mode=mode)
def eqx_call(model, state, inference):
    return jax.vmap(lambda xx, ss: model(xx, ss, inference=inference), axis_name="batch",
                    in_axes=(0, None), out_axes=(0, None))(x, state)
def eqx_state(model, state):
    if model.mode == "ema":
        m, v = state.get(model.ema_state_index)
        return f"first_time={bool(state.get(model.ema_first_time_index))} mean={vec(m)} var={vec(v)}"
    m, v = state.get(model.batch_state_index)
    return f"counter={int(state.get(model.batch_counter))} hidden_mean={vec(m)} hidden_var={vec(v)}"
for mode in ("batch", "ema"):
    E = f"equinox.BatchNorm(mode={mode})"
    def eq_a(mode=mode):
        model, state = eqx_make(mode)
        s = "fresh state: " + eqx_state(model, state)
        y, _ = eqx_call(model, state, True)
        s += " | inference: " + per_channel(y, -1) + f" maxdiff vs x/sqrt(1+eps)={np.abs(np.asarray(y)-fresh_expect(X2,1e-5)).max():.3g}"
        if mode == "ema":
            s += f"; ratio y/x ch2 = {vec(np.asarray(y)[:, 2] / X2[:, 2])}"
        return s
    tryrun(E, "(a)/(f) fresh inference", eq_a)
    def eq_c(mode=mode):
        model, state = eqx_make(mode)
        y, s1 = eqx_call(model, state, False)
        s = "after 1 train step: " + eqx_state(model, s1)
        s += f" | train output maxdiff vs batch-normalised={np.abs(np.asarray(y)-expected_inference(X2,m_b,v_b,1e-5,-1)).max():.3g}"
        yi, _ = eqx_call(model, s1, True)
        # infer effective stats from inference output: y = (x-m)/sqrt(v+eps)
        yi = np.asarray(yi, np.float64)
        scale = (X2[3] - X2[0]) / (yi[3] - yi[0])
        v_eff = scale ** 2 - 1e-5
        m_eff = X2[0] - yi[0] * scale
        s += f" | inference after 1 step uses mean={vec(m_eff)} var={vec(v_eff)} ({exp_after1})"
        x2 = 3.0 * X2 + 1.0
        m2, v2, _ = batch_stats(x2, -1)
        y2, s2 = jax.vmap(lambda xx, ss: model(xx, ss, inference=False), axis_name="batch", in_axes=(0, None), out_axes=(0, None))(jnp.asarray(x2), s1)
        s += f" | 2nd train step on 3x+1: output maxdiff vs batch-normalised={np.abs(np.asarray(y2)-expected_inference(x2,m2,v2,1e-5,-1)).max():.3g}"
        bm = 0.99 * m_b + 0.01 * m2; bv = 0.99 * v_b + 0.01 * v2
        s += f", vs normalised with blended 0.99*old+0.01*batch stats={np.abs(np.asarray(y2)-expected_inference(x2,bm,bv,1e-5,-1)).max():.3g}; state " + eqx_state(model, s2)
        return s
    tryrun(E, "(c) first train step", eq_c)

def eqx_case(mode):
    def f(mean, var, eps, train):
        model, state = eqx_make(mode, eps)
        if mode == "ema":
            state = state.set(model.ema_state_index, (jnp.asarray(mean), jnp.asarray(var)))
            state = state.set(model.ema_first_time_index, jnp.array(False))
        else:
            state = state.set(model.batch_state_index, (jnp.asarray(mean), jnp.asarray(var)))  # counter 0 => used as-is
        y, s2 = eqx_call(model, state, not train)
        out = per_channel(y, -1)
        if train:
            out += " | new " + eqx_state(model, s2)
        return out
    return f

for api, fn, eps0 in [(A, linen_case, 1e-5), (B, nnx_case, 1e-5), (H, hk_case, 1e-5),
                      ("equinox.BatchNorm(mode=batch)", eqx_case("batch"), 1e-5),
                      ("equinox.BatchNorm(mode=ema)", eqx_case("ema"), 1e-5)]:
    for name, (mean, var, eps) in cases(eps0).items():
        for mode in ("infer", "train"):
            tryrun(api, f"{mode} {name}", lambda: fn(mean, var, eps, mode == "train"))
