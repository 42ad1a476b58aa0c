"""Measures (norms, HVPs, curvature) against NumPy, dense Hessians and closed forms.

Each test compiles its measures into one ``jax.jit`` program where it can: on a small CPU
the cost is compilation, not arithmetic.
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import adabias as ab  # noqa: E402
from adabias import measures  # noqa: E402
from adabias.optim.agm import block_mean, leaf_mean  # noqa: E402

RNG = np.random.default_rng(0)


# --- a nonlinear loss on a dict pytree with two leaves ------------------------------------

PARAMS = {
    "a": jnp.asarray(RNG.normal(size=3)),
    "b": jnp.asarray(RNG.normal(size=(2, 2))),
}
P_NONLINEAR = 7  # 3 + 4 parameters
BATCH = jnp.asarray(RNG.normal(size=(5, 3)))


def nonlinear_loss(params, x):
    a, b = params["a"], params["b"]
    out = jnp.tanh(x @ a + jnp.sum(b * b))
    return (
        jnp.mean(out**2)
        + jnp.sum(a**2) * jnp.sum(jnp.sin(b))
        + jnp.sum(jnp.exp(0.3 * b))
        + 0.1 * jnp.sum(a**4)
    )


def dense_hessian(loss_fn, params, *args):
    def hessian(params, *args):
        flat_params, unravel = ravel_pytree(params)
        return jax.hessian(lambda y: loss_fn(unravel(y), *args))(flat_params)

    return np.asarray(jax.jit(hessian)(params, *args))


def flat(tree):
    return np.asarray(ravel_pytree(tree)[0])


def quadratic(a_matrix):
    a_matrix = jnp.asarray(a_matrix)
    return lambda x: 0.5 * x @ a_matrix @ x


def random_spd(p, seed):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(p, p))
    return g @ g.T / p + np.eye(p)


# --- norms ---------------------------------------------------------------------------------


def test_norms_vs_numpy():
    grads = {"w": jnp.array([[1.0, -2.0], [0.5, 0.0]]), "b": jnp.array(-3.0), "c": [jnp.array([0.25])]}
    g = np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(grads)])
    eps = 1e-3
    np.testing.assert_allclose(measures.perturbed_one_norm(grads, eps), np.sum(np.sqrt(g**2 + eps)), rtol=1e-14)
    np.testing.assert_allclose(measures.one_norm(grads), np.sum(np.abs(g)), rtol=1e-14)
    np.testing.assert_allclose(measures.squared_two_norm(grads), np.sum(g**2), rtol=1e-14)
    # eps -> 0: the perturbed one-norm is the one-norm
    np.testing.assert_allclose(measures.perturbed_one_norm(grads, 0.0), np.sum(np.abs(g)), rtol=1e-14)


@pytest.mark.parametrize("fn", [lambda t: measures.perturbed_one_norm(t, 1e-8), measures.one_norm,
                                measures.squared_two_norm])
def test_norms_empty_pytree_raises(fn):
    with pytest.raises(ValueError, match="no leaves"):
        fn({})


# --- HVPs ----------------------------------------------------------------------------------


def test_hvp_vs_hessian_and_finite_differences():
    tangent = {"a": jnp.asarray(RNG.normal(size=3)), "b": jnp.asarray(RNG.normal(size=(2, 2)))}
    v = flat(tangent)
    h = 1e-5

    @jax.jit
    def compute(params, tangent, batch):
        grad = jax.grad(nonlinear_loss)
        plus = jax.tree.map(lambda p, t: p + h * t, params, tangent)
        minus = jax.tree.map(lambda p, t: p - h * t, params, tangent)
        fd = jax.tree.map(lambda gp, gm: (gp - gm) / (2 * h), grad(plus, batch), grad(minus, batch))
        # extra *args: the batch; another batch gives another product
        return (measures.hvp(nonlinear_loss, params, tangent, batch), fd,
                measures.hvp(nonlinear_loss, params, tangent, 2.0 * batch))

    hv, fd, hv_other = compute(PARAMS, tangent, BATCH)
    assert jax.tree.structure(hv) == jax.tree.structure(PARAMS)
    np.testing.assert_allclose(flat(hv), dense_hessian(nonlinear_loss, PARAMS, BATCH) @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(flat(hv), flat(fd), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(flat(hv_other), dense_hessian(nonlinear_loss, PARAMS, 2.0 * BATCH) @ v,
                               rtol=1e-12, atol=1e-12)
    assert not np.allclose(flat(hv_other), flat(hv))


def test_hvp_batched_and_flat_hvp_vs_hessian():
    hess = dense_hessian(nonlinear_loss, PARAMS, BATCH)
    k = 4
    tangents = {"a": jnp.asarray(RNG.normal(size=(k, 3))), "b": jnp.asarray(RNG.normal(size=(k, 2, 2)))}
    v_flat = jnp.asarray(RNG.normal(size=P_NONLINEAR))

    @jax.jit
    def compute(params, tangents, batch, v):
        matvec, x, unravel = measures.flat_hvp(nonlinear_loss, params, batch)
        return measures.hvp_batched(nonlinear_loss, params, tangents, batch), matvec(v), x, unravel(x)

    out, hv_flat, x, round_trip = compute(PARAMS, tangents, BATCH, v_flat)
    assert out["a"].shape == (k, 3) and out["b"].shape == (k, 2, 2)
    for i in range(k):
        v = flat(jax.tree.map(lambda t: t[i], tangents))
        got = flat(jax.tree.map(lambda t: t[i], out))
        np.testing.assert_allclose(got, hess @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(x, flat(PARAMS))
    np.testing.assert_allclose(hv_flat, hess @ np.asarray(v_flat), rtol=1e-12, atol=1e-12)
    assert jax.tree.structure(round_trip) == jax.tree.structure(PARAMS)


# --- exact curvature -----------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 3, P_NONLINEAR, 100])
def test_hessian_diag_and_trace_exact_chunk_sizes(chunk_size):
    hess = dense_hessian(nonlinear_loss, PARAMS, BATCH)
    diag, trace = jax.jit(lambda p, b: (
        measures.hessian_diag(nonlinear_loss, p, b, chunk_size=chunk_size),
        measures.hessian_trace(nonlinear_loss, p, b, chunk_size=chunk_size),
    ))(PARAMS, BATCH)
    assert jax.tree.structure(diag) == jax.tree.structure(PARAMS)
    assert diag["b"].shape == (2, 2)
    np.testing.assert_allclose(flat(diag), np.diag(hess), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(trace, np.trace(hess), rtol=1e-12, atol=1e-12)


def test_top_eigenvalue_lanczos_nonlinear():
    hess = dense_hessian(nonlinear_loss, PARAMS, BATCH)
    top = jax.jit(lambda p, b: measures.top_eigenvalue(nonlinear_loss, p, b, method="lanczos", num_iters=30))(
        PARAMS, BATCH)
    np.testing.assert_allclose(top, np.linalg.eigvalsh(hess).max(), rtol=1e-10)


def test_top_eigenvalue_quadratic_lanczos_and_power():
    p = 20
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    eigs = np.concatenate([np.linspace(0.1, 5.0, p - 1), [10.0]])  # a separated top eigenvalue
    a = q @ np.diag(eigs) @ q.T
    loss = quadratic(a)
    x = jnp.asarray(rng.normal(size=p))
    full, few, power = jax.jit(lambda x: (
        measures.top_eigenvalue(loss, x, method="lanczos", num_iters=p),
        measures.top_eigenvalue(loss, x, method="lanczos", num_iters=12),
        measures.top_eigenvalue(loss, x, method="power", num_iters=200),
    ))(x)
    expected = np.linalg.eigvalsh(a).max()
    np.testing.assert_allclose(full, expected, rtol=1e-10)
    np.testing.assert_allclose(few, expected, rtol=1e-6)  # few steps suffice for a separated top
    np.testing.assert_allclose(power, expected, rtol=1e-10)


def test_top_eigenvalue_negative_definite():
    a = random_spd(8, 2)
    neg_a = quadratic(-a)  # a negative-definite, non-scalar Hessian: top eigenvalue -λ_min(A)
    neg_norm, neg_quad = jax.jit(lambda x, y: (
        measures.top_eigenvalue(lambda z: -jnp.sum(z**2), x, method="lanczos"),  # H = -2 I
        measures.top_eigenvalue(neg_a, y, method="lanczos", num_iters=30),
    ))(jnp.arange(1.0, 6.0), jnp.ones(8))
    np.testing.assert_allclose(neg_norm, -2.0, rtol=1e-12)
    np.testing.assert_allclose(neg_quad, -np.linalg.eigvalsh(a).min(), rtol=1e-10)


def test_top_eigenvalue_scalar_hessian_invariant_subspace():
    # H = c I: the Krylov space is 1-D, Lanczos breaks down after one step
    cs = (3.0, -1.5, 0.0)
    x = jnp.linspace(-1.0, 1.0, 10)

    def tops(x):
        out = []
        for c in cs:
            loss = lambda z, c=c: 0.5 * c * jnp.sum(z**2)  # noqa: E731
            out.append((measures.top_eigenvalue(loss, x, method="lanczos", num_iters=30),
                        measures.top_eigenvalue(loss, x, method="power", num_iters=3)))
        return out

    for c, (lanczos, power) in zip(cs, jax.jit(tops)(x)):
        assert np.isfinite(lanczos)
        np.testing.assert_allclose(lanczos, c, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(power, c, rtol=1e-12, atol=1e-12)


def test_top_eigenvalue_bad_input():
    with pytest.raises(ValueError, match="method"):
        measures.top_eigenvalue(nonlinear_loss, PARAMS, BATCH, method="bogus")
    with pytest.raises(ValueError, match="num_iters"):
        measures.top_eigenvalue(nonlinear_loss, PARAMS, BATCH, num_iters=0)


# --- Hutchinson ----------------------------------------------------------------------------

HUTCH_NS = (16, 64, 256, 1024)


def _loglog_slope(ns, errors):
    return np.polyfit(np.log(ns), np.log(errors), 1)[0]


def test_hutchinson_diag_and_trace_unbiased_with_n_to_minus_half_error():
    p = 20
    a = random_spd(p, 3)
    loss = quadratic(a)
    x = jnp.asarray(np.random.default_rng(4).normal(size=p))
    exact_diag, exact_trace = np.diag(a), np.trace(a)
    off = a - np.diag(np.diag(a))
    # "rbg" keys: the same estimator, ~4x faster to compile on CPU than threefry
    diag_keys = jax.random.split(jax.random.key(0, impl="rbg"), 32)
    trace_keys = jax.random.split(jax.random.key(1, impl="rbg"), 100)

    @jax.jit
    def estimates(diag_keys, trace_keys):  # every N in one program
        out = []
        for n in HUTCH_NS:
            diag = jax.vmap(lambda k: measures.hessian_diag(
                loss, x, method="hutchinson", key=k, num_samples=n, chunk_size=n))(diag_keys)
            trace = jax.vmap(lambda k: measures.hessian_trace(
                loss, x, method="hutchinson", key=k, num_samples=n, chunk_size=n))(trace_keys)
            out.append((diag, trace))
        return out

    diag_rms, diag_theory, trace_rms, trace_theory = [], [], [], []
    for n, (diag, trace) in zip(HUTCH_NS, estimates(diag_keys, trace_keys)):
        diag, trace = np.asarray(diag), np.asarray(trace)
        assert diag.shape == (32, p) and trace.shape == (100,)
        # Var(d̂_i) = Σ_{j≠i} A_ij² / N;  Var(t̂) = 2 Σ_{i≠j} A_ij² / N
        diag_rms.append(np.sqrt(np.mean((diag - exact_diag) ** 2)))
        diag_theory.append(np.sqrt(np.mean(np.sum(off**2, axis=1)) / n))
        trace_rms.append(np.sqrt(np.mean((trace - exact_trace) ** 2)))
        trace_theory.append(np.sqrt(2 * np.sum(off**2) / n))
        if n == HUTCH_NS[-1]:  # unbiased: the mean over keys is within a few standard errors
            assert np.all(np.abs(diag.mean(axis=0) - exact_diag) <= 5 * np.sqrt(np.sum(off**2, axis=1) / n / 32))
            assert abs(trace.mean() - exact_trace) <= 5 * trace_theory[-1] / np.sqrt(100)

    for rms, theory in ((diag_rms, diag_theory), (trace_rms, trace_theory)):
        slope = _loglog_slope(HUTCH_NS, rms)
        assert -0.65 <= slope <= -0.35, slope
        ratios = np.array(rms) / np.array(theory)
        assert np.all((ratios >= 0.7) & (ratios <= 1.4)), ratios


def test_hutchinson_exact_for_diagonal_hessian():
    d = np.array([1.0, 2.5, -0.5, 4.0, 0.25])
    du, dv = jnp.asarray(d[:2]), jnp.asarray(d[2:])

    def loss(p):
        return 0.5 * jnp.sum(du * p["u"] ** 2) + 0.5 * jnp.sum(dv * p["v"] ** 2)

    params = {"u": jnp.ones(2), "v": jnp.full(3, -2.0)}
    diag, trace = jax.jit(lambda p, k: (
        measures.hessian_diag(loss, p, method="hutchinson", key=k, num_samples=1),
        measures.hessian_trace(loss, p, method="hutchinson", key=k, num_samples=1),
    ))(params, jax.random.key(7))
    np.testing.assert_allclose(flat(diag), d, rtol=1e-14)
    np.testing.assert_allclose(trace, d.sum(), rtol=1e-14)


# --- diag_power_trace ----------------------------------------------------------------------


def _pytree_quadratic():
    """A loss on {"a": (5,), "b": (2, 3)} with a dense, positive-diagonal Hessian A (11×11)."""
    a = random_spd(11, 6)
    rng = np.random.default_rng(10)
    params = {"a": jnp.asarray(rng.normal(size=5)), "b": jnp.asarray(rng.normal(size=(2, 3)))}
    a_j = jnp.asarray(a)

    def loss(p):
        x = ravel_pytree(p)[0]
        return 0.5 * x @ a_j @ x

    return loss, params, a


def test_diag_power_trace_powers_and_statistics():
    loss, params, a = _pytree_quadratic()
    d = np.diag(a)
    blocks = {"a": jnp.array([0, 0, 1, 2, 2]), "b": jnp.array([[1, 1, 3], [3, 3, 0]])}  # 0 and 1 span leaves
    powers = (0.5, 1.0, 0.7, 0.3)

    def compute(p):
        return {
            "trace": measures.hessian_trace(loss, p),
            "plain": [measures.diag_power_trace(loss, p, power=q) for q in powers],
            "default": measures.diag_power_trace(loss, p),
            "block": [measures.diag_power_trace(loss, p, power=q, statistic=block_mean(blocks)) for q in powers],
            "leaf": [measures.diag_power_trace(loss, p, power=q, statistic=leaf_mean) for q in powers],
        }

    out = jax.jit(compute)(params)
    np.testing.assert_allclose(out["trace"], np.trace(a), rtol=1e-12)
    np.testing.assert_allclose(out["plain"][1], np.trace(a), rtol=1e-12)  # power 1: the trace
    np.testing.assert_allclose(out["default"], np.sum(np.sqrt(d)), rtol=1e-12)  # default power 1/2
    ids = flat(blocks).astype(int)
    for q, plain, block, leaf in zip(powers, out["plain"], out["block"], out["leaf"]):
        np.testing.assert_allclose(plain, np.sum(d**q), rtol=1e-12)
        expected = 0.0
        for b in np.unique(ids):
            members = d[ids == b]
            expected += members.size * np.mean(members) ** q
        np.testing.assert_allclose(block, expected, rtol=1e-12)
        np.testing.assert_allclose(leaf, 5 * np.mean(d[:5]) ** q + 6 * np.mean(d[5:]) ** q, rtol=1e-12)


def test_diag_power_trace_clips_negative_diagonal():
    d = jnp.array([2.0, -3.0, 0.5])
    got = jax.jit(lambda x: measures.diag_power_trace(lambda z: 0.5 * jnp.sum(d * z**2), x, power=0.5))(jnp.ones(3))
    np.testing.assert_allclose(got, np.sqrt(2.0) + np.sqrt(0.5), rtol=1e-12)


# --- diagonal linear net closed forms (DESIGN §3.5) ----------------------------------------


def diag_net_loss(params, z, y):
    w = params["u"] ** 2 - params["v"] ** 2
    return 0.5 * jnp.mean((z @ w - y) ** 2)


def _diag_net(d=6, n=10, seed=8, gaussian=False, balanced=False):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d)) if gaussian else rng.choice([-1.0, 1.0], size=(n, d))
    u, v = rng.normal(size=d), rng.normal(size=d)
    if balanced:  # u_i v_i = 0: one of the two is zero
        positive = np.arange(d) % 2 == 0
        u, v = np.where(positive, u, 0.0), np.where(positive, 0.0, v)
    y = z @ (u**2 - v**2)  # zero residual: on the interpolation manifold
    params = {"u": jnp.asarray(u), "v": jnp.asarray(v)}
    return params, jnp.asarray(z), jnp.asarray(y), u, v, z


LAMBDAS = (0.25, 0.5, 0.8)


def _diag_net_measures(params, z, y):
    return {
        "diag": measures.hessian_diag(diag_net_loss, params, z, y),
        "trace": measures.hessian_trace(diag_net_loss, params, z, y),
        "sqrt": measures.diag_power_trace(diag_net_loss, params, z, y, power=0.5),
        "adame": [measures.diag_power_trace(diag_net_loss, params, z, y, power=1 - lam) for lam in LAMBDAS],
    }


_diag_net_measures_jit = jax.jit(_diag_net_measures)


def test_diag_net_closed_forms():
    params, z, y, u, v, _ = _diag_net()
    out = _diag_net_measures_jit(params, z, y)
    np.testing.assert_allclose(out["diag"]["u"], 4 * u**2, rtol=1e-12)  # mean(z²) = 1
    np.testing.assert_allclose(out["diag"]["v"], 4 * v**2, rtol=1e-12)
    np.testing.assert_allclose(out["trace"], 4 * np.sum(u**2 + v**2), rtol=1e-12)
    np.testing.assert_allclose(out["sqrt"], 2 * np.sum(np.abs(u) + np.abs(v)), rtol=1e-12)
    for lam, got in zip(LAMBDAS, out["adame"]):
        q = 1 - lam
        np.testing.assert_allclose(got, 4**q * np.sum(np.abs(u) ** (2 * q) + np.abs(v) ** (2 * q)), rtol=1e-12)
    # off balance the ℓ_{1/2} bound is strict: Σ(|u|+|v|) > Σ√|w|
    assert np.sum(np.abs(u) + np.abs(v)) > np.sum(np.sqrt(np.abs(u**2 - v**2)))


def test_diag_net_at_balance():
    params, z, y, u, v, _ = _diag_net(balanced=True)
    assert np.all(u * v == 0)
    w = u**2 - v**2
    out = _diag_net_measures_jit(params, z, y)
    np.testing.assert_allclose(out["sqrt"], 2 * np.sum(np.sqrt(np.abs(w))), rtol=1e-12)
    np.testing.assert_allclose(out["trace"], 4 * np.sum(np.abs(w)), rtol=1e-12)
    for lam, got in zip(LAMBDAS, out["adame"]):
        np.testing.assert_allclose(got, 4 ** (1 - lam) * np.sum(np.abs(w) ** (1 - lam)), rtol=1e-12)


def test_diag_net_gaussian_features():
    params, z, y, u, v, z_np = _diag_net(gaussian=True, seed=9)
    scale = 4 * np.mean(z_np**2, axis=0)
    out = _diag_net_measures_jit(params, z, y)
    np.testing.assert_allclose(out["diag"]["u"], scale * u**2, rtol=1e-10)
    np.testing.assert_allclose(out["diag"]["v"], scale * v**2, rtol=1e-10)
    np.testing.assert_allclose(out["sqrt"], np.sum(np.sqrt(scale) * (np.abs(u) + np.abs(v))), rtol=1e-10)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [measures.hessian_diag, measures.hessian_trace, measures.diag_power_trace])
def test_bad_method(fn):
    with pytest.raises(ValueError, match="method") as info:
        fn(nonlinear_loss, PARAMS, BATCH, method="bogus")
    assert "bogus" in str(info.value)
    with pytest.raises(ValueError, match="key"):
        fn(nonlinear_loss, PARAMS, BATCH, method="hutchinson", num_samples=4)
    with pytest.raises(ValueError, match="num_samples"):
        fn(nonlinear_loss, PARAMS, BATCH, method="hutchinson", key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_samples"):
        fn(nonlinear_loss, PARAMS, BATCH, method="hutchinson", key=jax.random.key(0), num_samples=0)


# --- jit and the engine --------------------------------------------------------------------


def test_jit_compatible():
    params, z, y, u, v, _ = _diag_net()
    expected = 2 * np.sum(np.abs(u) + np.abs(v))
    closed = jax.jit(lambda p: measures.diag_power_trace(diag_net_loss, p, z, y))  # batch as *args
    np.testing.assert_allclose(closed(params), expected, rtol=1e-12)
    traced = jax.jit(lambda p, zz, yy: (
        measures.diag_power_trace(diag_net_loss, p, zz, yy),
        measures.top_eigenvalue(diag_net_loss, p, zz, yy),
    ))
    sharpness, top = traced(params, z, y)
    np.testing.assert_allclose(sharpness, expected, rtol=1e-12)
    np.testing.assert_allclose(top, np.linalg.eigvalsh(dense_hessian(diag_net_loss, params, z, y)).max(), rtol=1e-8)
    hutch = jax.jit(lambda p, k: measures.diag_power_trace(diag_net_loss, p, z, y, method="hutchinson",
                                                           key=k, num_samples=8))
    assert np.isfinite(hutch(params, jax.random.key(0)))


def test_as_run_metric():
    params, z, y, _, _, _ = _diag_net()
    params0 = jax.tree.map(lambda x: 0.5 * x + 0.1, params)

    def loss_fn(p):
        return diag_net_loss(p, z, y)

    metrics = {
        "adam_sharpness": lambda p: measures.diag_power_trace(diag_net_loss, p, z, y),
        "trace": lambda p: measures.hessian_trace(loss_fn, p),
        "grad_l1": lambda p: measures.one_norm(jax.grad(loss_fn)(p)),
    }
    traj = ab.run(optax.sgd(0.01), loss_fn, params0, 6, save_every=2, metrics=metrics)
    assert traj.metrics["adam_sharpness"].shape == (4,)
    hessians = np.asarray(jax.jit(jax.vmap(jax.hessian(lambda x: loss_fn(ravel_pytree(params)[1](x)))))(
        jax.vmap(lambda p: ravel_pytree(p)[0])(traj.params)))
    diags = np.diagonal(hessians, axis1=1, axis2=2)
    grads = np.asarray(jax.jit(jax.vmap(lambda p: ravel_pytree(jax.grad(loss_fn)(p))[0]))(traj.params))
    np.testing.assert_allclose(traj.metrics["adam_sharpness"], np.sum(np.sqrt(np.maximum(diags, 0)), axis=1),
                               rtol=1e-10)
    np.testing.assert_allclose(traj.metrics["trace"], np.sum(diags, axis=1), rtol=1e-10)
    np.testing.assert_allclose(traj.metrics["grad_l1"], np.sum(np.abs(grads), axis=1), rtol=1e-10)
    assert not np.allclose(traj.metrics["trace"][0], traj.metrics["trace"][-1])


def test_default_chunk_is_cache_sized_and_exact():
    # p = 600: the default chunk (2¹⁷ // 600 = 218 HVPs) does not divide p, so the last
    # chunk is partial; the diagonal must still be A's diagonal
    p = 600
    a = random_spd(p, 11)
    x = jnp.asarray(np.random.default_rng(12).normal(size=p))
    diag = jax.jit(lambda x: measures.hessian_diag(quadratic(a), x))(x)
    np.testing.assert_allclose(diag, np.diag(a), rtol=1e-12)
    from adabias.measures.curvature import _chunk
    assert _chunk(None, p, p) == 2**17 // p and _chunk(None, 10, 10) == 10 and _chunk(None, 10**6, 5) == 1
    with pytest.raises(ValueError, match="chunk_size"):
        measures.hessian_diag(quadratic(a), x, chunk_size=0)


def test_rademacher_probes_are_independent_fair_signs():
    from adabias.measures.curvature import _rademacher

    num, size = 4000, 70  # 70 = two full 32-bit words and a partial third
    z = np.asarray(_rademacher(jax.random.key(5), num, size, jnp.float64))
    assert z.shape == (num, size) and set(np.unique(z)) == {-1.0, 1.0}
    # E z = 0 and E zᵢzⱼ = δᵢⱼ, each within 5 standard errors (1/√num)
    assert np.all(np.abs(z.mean(axis=0)) < 5 / np.sqrt(num))
    second = z.T @ z / num
    assert np.all(np.abs(second - np.eye(size)) < 5 / np.sqrt(num))
