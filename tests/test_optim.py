"""Every optimizer against a plain NumPy loop written from the papers' formulas (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adabias as ab
from adabias.testing import agm_reference

jax.config.update("jax_enable_x64", True)

A = np.array([1.0, 2.0, 0.5, 3.0, 1.5])
C = np.array([1.0, -1.0, 2.0, 0.5, -0.3])


def numpy_grad(theta: np.ndarray) -> np.ndarray:
    """∇E for E(θ) = ½Σaᵢ(θᵢ−cᵢ)² + ¼Σθᵢ⁴ + ½(Σθᵢ)², written by hand."""
    return A * (theta - C) + theta**3 + theta.sum()


def split(theta):
    """The pytree view of the flat vector: {'w': θ[:2] (1×2), 'b': θ[2:]}."""
    return {"w": jnp.asarray(theta[:2]).reshape(1, 2), "b": jnp.asarray(theta[2:])}



def loss(params):
    theta = jnp.concatenate([params["w"].ravel(), params["b"]])
    return (0.5 * jnp.sum(A * (theta - C) ** 2) + 0.25 * jnp.sum(theta**4)
            + 0.5 * jnp.sum(theta) ** 2)


THETA0 = np.array([0.3, -0.2, 0.1, 0.7, -0.5])
NUM_STEPS = 40


def optax_iterates(optimizer, num_steps=NUM_STEPS):
    params = split(THETA0)
    state = optimizer.init(params)
    out = [THETA0.copy()]
    for _ in range(num_steps):
        grads = jax.grad(loss)(params)
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.concatenate([np.ravel(params["w"]), np.ravel(params["b"])]))
    return np.array(out)


def numpy_adam(h, beta, rho, eps, inside=True, bias=True, num_steps=NUM_STEPS):
    """CKS Definition 2.1 (and its ε-outside / no-bias-correction variants)."""
    theta, m, nu = THETA0.copy(), np.zeros(5), np.zeros(5)
    out = [theta.copy()]
    for n in range(num_steps):
        g = numpy_grad(theta)
        nu = rho * nu + (1 - rho) * g**2
        m = beta * m + (1 - beta) * g
        m_hat = m / (1 - beta ** (n + 1)) if bias else m
        nu_hat = nu / (1 - rho ** (n + 1)) if bias else nu
        denominator = np.sqrt(nu_hat + eps) if inside else np.sqrt(nu_hat) + eps
        theta = theta - h * m_hat / denominator
        out.append(theta.copy())
    return np.array(out)


def numpy_agm(h, beta1, beta2, V, S, num_steps=NUM_STEPS):
    """LWL AGM: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)V(g²), θ ← θ − ηS(v)m (adabias.testing)."""
    return agm_reference(lambda k, theta: numpy_grad(theta), THETA0, num_steps, learning_rate=h,
                         beta1=beta1, beta2=beta2, V=V, S=S)


def assert_close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("inside", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_adam_matches_numpy_loop(inside, bias):
    h, beta, rho, eps = 0.05, 0.9, 0.95, 1e-3
    opt = ab.optim.adam(h, beta, rho, eps, eps_inside_sqrt=inside, bias_correction=bias)
    assert_close(optax_iterates(opt), numpy_adam(h, beta, rho, eps, inside, bias))


def test_rmsprop_is_adam_with_beta_zero():
    opt = ab.optim.rmsprop(0.02, 0.9, 1e-4)
    assert_close(optax_iterates(opt), numpy_adam(0.02, 0.0, 0.9, 1e-4))


def test_gd_matches_numpy_loop():
    theta, out = THETA0.copy(), [THETA0.copy()]
    for _ in range(NUM_STEPS):
        theta = theta - 0.05 * numpy_grad(theta)
        out.append(theta.copy())
    assert_close(optax_iterates(ab.optim.gd(0.05)), np.array(out))


def test_heavy_ball_matches_ghosh_recursion():
    """θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ − h∇E(θ⁽ⁿ⁾) + β(θ⁽ⁿ⁾ − θ⁽ⁿ⁻¹⁾), θ⁽⁻¹⁾ = θ⁽⁰⁾ (CKS (1.1))."""
    h, beta = 0.03, 0.8
    previous, theta, out = THETA0.copy(), THETA0.copy(), [THETA0.copy()]
    for _ in range(NUM_STEPS):
        previous, theta = theta, theta - h * numpy_grad(theta) + beta * (theta - previous)
        out.append(theta.copy())
    assert_close(optax_iterates(ab.optim.heavy_ball(h, beta)), np.array(out))


def test_agm_adam_equals_adam_without_bias_correction_eps_outside():
    eps = 1e-3
    agm = ab.optim.agm(0.05, 0.9, 0.95, ab.optim.diagonal, ab.optim.inverse_root(eps))
    adam = ab.optim.adam(0.05, 0.9, 0.95, eps, eps_inside_sqrt=False, bias_correction=False)
    np.testing.assert_array_equal(optax_iterates(agm), optax_iterates(adam))
    reference = numpy_agm(0.05, 0.9, 0.95, lambda d: d, lambda v: 1 / (np.sqrt(v) + eps))
    assert_close(optax_iterates(agm), reference)


@pytest.mark.parametrize("lam", [0.25, 0.5, 0.75, 0.99])
def test_adame_matches_numpy_loop(lam):
    eps = 1e-4
    reference = numpy_agm(0.02, 0.9, 0.99, lambda d: d, lambda v: 1 / (v**lam + eps))
    assert_close(optax_iterates(ab.optim.adame(0.02, lam, 0.9, 0.99, eps)), reference)


def test_adam_mini_matches_numpy_loop_with_block_spanning_leaves():
    # flat order of the test vector: w (θ0, θ1), b (θ2, θ3, θ4); block 0 spans both leaves
    ids = np.array([0, 1, 0, 2, 2])
    blocks = {"w": jnp.asarray(ids[:2]).reshape(1, 2), "b": jnp.asarray(ids[2:])}

    def block_mean(d):
        return np.array([d[ids == ids[i]].mean() for i in range(5)])

    eps = 1e-4
    reference = numpy_agm(0.02, 0.9, 0.99, block_mean, lambda v: 1 / (np.sqrt(v) + eps))
    opt = ab.optim.adam_mini(0.02, blocks, 0.9, 0.99, eps)
    assert_close(optax_iterates(opt), reference)


def test_adalayer_matches_numpy_loop():
    def leaf_mean(d):
        return np.concatenate([np.full(2, d[:2].mean()), np.full(3, d[2:].mean())])

    eps = 1e-4
    reference = numpy_agm(0.02, 0.9, 0.99, leaf_mean, lambda v: 1 / (np.sqrt(v) + eps))
    assert_close(optax_iterates(ab.optim.adalayer(0.02, 0.9, 0.99, eps)), reference)


def test_adam_mini_with_one_block_per_coordinate_is_agm_adam():
    blocks = {"w": jnp.array([[0, 1]]), "b": jnp.array([2, 3, 4])}
    mini = ab.optim.adam_mini(0.02, blocks, 0.9, 0.99, 1e-4)
    adam = ab.optim.adam(0.02, 0.9, 0.99, 1e-4, eps_inside_sqrt=False, bias_correction=False)
    assert_close(optax_iterates(mini), optax_iterates(adam))


def test_hyperparameters_may_be_traced():
    """Under jit/vmap the values are tracers: no validation error, same numbers."""

    @jax.jit
    def first_update(h, beta, rho):
        opt = ab.optim.adam(h, beta, rho, 1e-3)
        params = split(THETA0)
        updates, _ = opt.update(jax.grad(loss)(params), opt.init(params), params)
        return updates

    expected = numpy_adam(0.05, 0.9, 0.95, 1e-3, num_steps=1)
    got = first_update(0.05, 0.9, 0.95)
    got = THETA0 + np.concatenate([np.ravel(got["w"]), np.ravel(got["b"])])
    assert_close(got, expected[1])


BAD_BETA = st.one_of(
    st.floats(max_value=-1e-12, allow_nan=False, allow_infinity=True),
    st.floats(min_value=1.0, allow_nan=False, allow_infinity=True),
    st.just(float("nan")),
)


@settings(max_examples=30, deadline=None)
@given(BAD_BETA)
def test_beta_outside_unit_interval_is_rejected_with_its_name_and_value(beta):
    for build, name in [
        (lambda b: ab.optim.adam(0.1, beta1=b), "beta1"),
        (lambda b: ab.optim.adam(0.1, beta2=b), "beta2"),
        (lambda b: ab.optim.heavy_ball(0.1, b), "beta"),
        (lambda b: ab.optim.adame(0.1, 0.5, beta2=b), "beta2"),
    ]:
        with pytest.raises(ValueError, match=name) as error:
            build(beta)
        assert repr(beta) in str(error.value)


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.floats(max_value=0.0), st.just(float("inf")), st.just(float("nan"))))
def test_non_positive_eps_learning_rate_lambda_rejected(value):
    for build, name in [
        (lambda x: ab.optim.adam(0.1, eps=x), "eps"),
        (lambda x: ab.optim.adam(x), "learning_rate"),
        (lambda x: ab.optim.gd(x), "learning_rate"),
        (lambda x: ab.optim.adame(0.1, x), "lam"),
        (lambda x: ab.optim.adalayer(0.1, eps=x), "eps"),
    ]:
        with pytest.raises(ValueError, match=name):
            build(value)


def test_blocks_not_shaped_like_params_rejected():
    params = split(THETA0)
    with pytest.raises(ValueError, match="blocks"):
        ab.optim.adam_mini(0.1, {"w": jnp.zeros((1, 2), int)}, 0.9).init(params)
    with pytest.raises(ValueError, match="blocks"):
        ab.optim.adam_mini(0.1, {"w": jnp.zeros((2, 1), int), "b": jnp.zeros(3, int)}).init(params)
    with pytest.raises(ValueError, match="integer"):
        ab.optim.adam_mini(0.1, {"w": jnp.zeros((1, 2)), "b": jnp.zeros(3)})
    with pytest.raises(ValueError, match="non-negative"):
        ab.optim.adam_mini(0.1, {"w": -jnp.ones((1, 2), int), "b": jnp.zeros(3, int)})


@settings(max_examples=15, deadline=None)
@given(st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=4))
def test_every_optimizer_keeps_any_pytree_structure(shapes):
    params = {f"leaf{i}": jnp.ones(tuple(shape)) * (i + 1) for i, shape in enumerate(shapes)}
    grads = jax.tree.map(lambda x: 0.1 * x, params)
    blocks = jax.tree.map(lambda x: jnp.zeros(x.shape, int), params)
    for opt in [ab.optim.adam(0.1), ab.optim.rmsprop(0.1), ab.optim.gd(0.1),
                ab.optim.heavy_ball(0.1, 0.5), ab.optim.adame(0.1, 0.3),
                ab.optim.adalayer(0.1), ab.optim.adam_mini(0.1, blocks)]:
        updates, _ = opt.update(grads, opt.init(params), params)
        assert jax.tree.structure(updates) == jax.tree.structure(params)
        for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
            assert u.shape == p.shape and bool(jnp.all(jnp.isfinite(u)))


@pytest.mark.parametrize("start", ["number", "pytree"])
def test_agm_started_at_initial_v_matches_numpy_loop(start):
    # v₀ given (as optax's scale_by_rms(initial_scale)): the recursion runs from there, m₀ = 0
    h, beta1, beta2, eps = 0.02, 0.9, 0.99, 1e-4
    v0 = np.full(5, 0.3) if start == "number" else 0.1 + THETA0**2
    initial_v = 0.3 if start == "number" else split(v0)
    theta, m, v = THETA0.copy(), np.zeros(5), v0.copy()
    reference = [theta.copy()]
    for _ in range(NUM_STEPS):
        g = numpy_grad(theta)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        theta = theta - h * m / (np.sqrt(v) + eps)
        reference.append(theta.copy())
    opt = ab.optim.agm(h, beta1, beta2, ab.optim.diagonal, ab.optim.inverse_root(eps), initial_v=initial_v)
    assert_close(optax_iterates(opt), np.array(reference))
    assert_close(optax_iterates(ab.optim.adame(h, 0.5, beta1, beta2, eps, initial_v=initial_v)),
                 np.array(reference))
    with pytest.raises(ValueError, match="initial_v"):
        ab.optim.agm(h, beta1, beta2, ab.optim.diagonal, ab.optim.inverse_root(eps),
                     initial_v={"w": jnp.ones((1, 2))}).init(split(THETA0))
