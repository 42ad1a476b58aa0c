"""LWL slow ODEs under label noise (flows.label_noise) on a diagonal linear net.

Checked against independent computations: the exact gradient-noise covariance (α), finite
differences of tr(S H) (the third derivative), Jacobian null spaces (projections), the
diagonal net's closed forms (tr H = 4Σ(u² + v²), Diag H = 4(u², v²) on Γ), and label-noise
SGD / Adam (β₁ = 0) simulated over many seeds (the drift ratio of DESIGN §3.5).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from adabias.flows.label_noise import (
    SlowAGMState,
    hessian_trace_semigradient,
    label_noise_alpha,
    label_noise_slow_agm,
    label_noise_slow_agm_quasi_static,
    label_noise_slow_sgd,
    project_to_manifold,
    quasi_static_v,
    tangent_projector,
)
from adabias.flows.solve import solve
from adabias.optim.agm import block_mean, diagonal, inverse_power, inverse_root

jax.config.update("jax_enable_x64", True)

D, N, DELTA = 5, 2, 0.5
ALPHA = DELTA**2 / N
_rng = np.random.default_rng(0)
Z = jnp.asarray(_rng.choice([-1.0, 1.0], size=(N, D)))
Y = Z @ jnp.array([1.0, 0.0, 0.0, 0.0, 0.0])
BATCH = (Z, Y)
START = {"u": jnp.asarray(_rng.uniform(0.6, 1.0, D)), "v": jnp.asarray(_rng.uniform(0.6, 1.0, D))}


def predictions(params, features):
    return features @ (params["u"] ** 2 - params["v"] ** 2)


def loss(params, batch):
    """½ mean (f − y)², f = ⟨u⊙u − v⊙v, z⟩."""
    features, targets = batch
    return 0.5 * jnp.mean((predictions(params, features) - targets) ** 2)


def residual(params, batch):
    features, targets = batch
    return predictions(params, features) - targets


def flat(tree):
    return np.asarray(ravel_pytree(tree)[0])


def jacobian(params):
    x, unravel = ravel_pytree(params)
    return np.asarray(jax.jacfwd(lambda y: predictions(unravel(y), Z))(x))


def dense_hessian(params, batch=BATCH):
    x, unravel = ravel_pytree(params)
    return jax.hessian(lambda y: loss(unravel(y), batch))(x)


@pytest.fixture(scope="module")
def zeta0():
    return jax.jit(lambda p: project_to_manifold(loss, BATCH, p))(START)


def test_alpha_is_the_exact_label_noise_covariance_factor(zeta0):
    # E over all 2^n sign patterns of g gᵀ (g the noisy gradient at zero residual) = α H.
    grads = []
    for signs in itertools.product([-1.0, 1.0], repeat=N):
        noisy = (Z, Y + DELTA * jnp.array(signs))
        grads.append(flat(jax.grad(loss)(zeta0, noisy)))
    grads = np.array(grads)
    covariance = grads.T @ grads / len(grads)
    assert label_noise_alpha(DELTA, N) == pytest.approx(ALPHA)
    np.testing.assert_allclose(covariance, ALPHA * np.asarray(dense_hessian(zeta0)), atol=1e-12)
    with pytest.raises(ValueError, match="delta"):
        label_noise_alpha(0.0, 3)


def test_project_to_manifold_reaches_zero_loss_with_and_without_s():
    s = {"u": jnp.linspace(0.5, 2.0, D), "v": jnp.linspace(2.0, 0.5, D)}
    for preconditioner in (None, s):
        end = project_to_manifold(loss, BATCH, START, S=preconditioner)
        assert float(loss(end, BATCH)) < 1e-26
        # the end is the limit of θ̇ = −S∇L: close to a long plain-Euler run of that flow
        x, unravel = ravel_pytree(START)
        weights = np.ones(2 * D) if preconditioner is None else flat(preconditioner)
        grad = jax.grad(lambda y: loss(unravel(y), BATCH))
        x = jax.jit(lambda y: jax.lax.fori_loop(0, 20_000, lambda _, z: z - 1e-3 * weights * grad(z), y))(x)
        np.testing.assert_allclose(flat(end), np.asarray(x), atol=1e-3)


def test_semigradient_matches_finite_differences_of_trace_s_h(zeta0):
    point = jax.tree.map(lambda a: a + 0.05, zeta0)  # off Γ too: the identity is general
    s = {"u": jnp.asarray(_rng.uniform(0.5, 2.0, D)), "v": jnp.asarray(_rng.uniform(0.5, 2.0, D))}
    x, unravel = ravel_pytree(point)
    weights = jnp.asarray(flat(s))
    trace_sh = lambda y: float(jnp.sum(weights * jnp.diag(dense_hessian(unravel(y)))))
    step = 1e-5
    finite = np.array([(trace_sh(x + step * e) - trace_sh(x - step * e)) / (2 * step)
                       for e in np.eye(x.size)])
    np.testing.assert_allclose(flat(hessian_trace_semigradient(loss, BATCH, point, s)), finite,
                               rtol=1e-7, atol=1e-8)
    # S = None: ∇tr(H) = 8(u, v) for this net (tr H = 4Σ(u² + v²) everywhere, ±1 features)
    np.testing.assert_allclose(flat(hessian_trace_semigradient(loss, BATCH, point)), 8 * flat(point),
                               rtol=1e-12)


def test_projectors_project_onto_the_tangent_space(zeta0):
    J = jacobian(zeta0)
    p = J.shape[1]
    orthogonal = np.asarray(tangent_projector(loss, BATCH, zeta0))
    np.testing.assert_allclose(orthogonal, orthogonal.T, atol=1e-12)
    np.testing.assert_allclose(orthogonal @ orthogonal, orthogonal, atol=1e-12)
    np.testing.assert_allclose(J @ orthogonal, 0.0, atol=1e-12)
    np.testing.assert_allclose(orthogonal, np.eye(p) - np.linalg.pinv(J) @ J, atol=1e-12)

    s = {"u": jnp.asarray(_rng.uniform(0.2, 3.0, D)), "v": jnp.asarray(_rng.uniform(0.2, 3.0, D))}
    weights = flat(s)
    oblique = np.asarray(tangent_projector(loss, BATCH, zeta0, s))
    np.testing.assert_allclose(oblique @ oblique, oblique, atol=1e-12)
    np.testing.assert_allclose(J @ oblique, 0.0, atol=1e-12)  # maps into T_ζΓ = null J
    np.testing.assert_allclose(oblique @ (weights[:, None] * J.T), 0.0, atol=1e-12)  # along S·normal
    assert np.linalg.matrix_rank(oblique, tol=1e-8) == p - np.linalg.matrix_rank(J)
    from_jacobian = np.asarray(tangent_projector(loss, BATCH, zeta0, s, residual_fn=residual))
    np.testing.assert_allclose(from_jacobian, oblique, atol=1e-10)


def test_sgd_drift_is_the_closed_form_and_reduces_trace_h(zeta0):
    field = label_noise_slow_sgd(loss, BATCH, alpha=ALPHA)
    theta = flat(zeta0)
    tangent = np.eye(theta.size) - np.linalg.pinv(jacobian(zeta0)) @ jacobian(zeta0)
    np.testing.assert_allclose(flat(field(0.0, zeta0)), -2 * ALPHA * tangent @ theta, rtol=1e-10, atol=1e-13)
    with_jacobian = label_noise_slow_sgd(loss, BATCH, alpha=ALPHA, residual_fn=residual)
    np.testing.assert_allclose(flat(with_jacobian(0.0, zeta0)), flat(field(0.0, zeta0)), atol=1e-11)
    np.testing.assert_array_equal(flat(field(0.3, zeta0, None)), flat(field(0.0, zeta0)))  # diffrax's f(t, y, args)

    path = solve(jax.jit(field), zeta0, jnp.linspace(0.0, 1.0, 11), rtol=1e-9, atol=1e-11)
    trace_h = 4 * np.asarray(jnp.sum(path["u"] ** 2 + path["v"] ** 2, axis=1))
    assert np.all(np.diff(trace_h) < 0) and trace_h[-1] < 0.8 * trace_h[0]
    dense = [float(jnp.trace(dense_hessian(jax.tree.map(lambda a: a[i], path)))) for i in (0, 10)]
    np.testing.assert_allclose(dense, trace_h[[0, 10]], rtol=1e-10)
    losses = jax.vmap(lambda p: loss(p, BATCH))(path)
    assert float(jnp.max(losses)) < 1e-16  # the flow stays on Γ


def test_adam_slow_flow_reduces_the_root_diag_trace(zeta0):
    precondition = inverse_root(1e-8)
    field = jax.jit(label_noise_slow_agm_quasi_static(loss, BATCH, alpha=ALPHA, V=diagonal, S=precondition))
    path = solve(field, zeta0, jnp.linspace(0.0, 0.08, 9), rtol=1e-9, atol=1e-11)
    diag_h = np.array([np.diag(dense_hessian(jax.tree.map(lambda a: a[i], path))) for i in range(9)])
    root_trace = np.sqrt(diag_h).sum(axis=1)
    np.testing.assert_allclose(root_trace, 2 * np.sum(np.abs(np.asarray(path["u"])) + np.abs(np.asarray(path["v"])), axis=1),
                               rtol=1e-7)  # Diag H = 4(u², v²) on Γ
    assert np.all(np.diff(root_trace) < 0)
    # the quasi-static field is the coupled field at v = V(Σ(ζ)), where dv = 0
    v0 = quasi_static_v(loss, BATCH, zeta0, alpha=ALPHA, V=diagonal)
    np.testing.assert_allclose(flat(v0), ALPHA * 4 * flat(zeta0) ** 2, rtol=1e-10)
    coupled = label_noise_slow_agm(loss, BATCH, alpha=ALPHA, V=diagonal, S=precondition,
                                   c=(1 - 0.999) / 0.01**2)
    rates = coupled(0.0, SlowAGMState(v=v0, zeta=zeta0))
    np.testing.assert_allclose(flat(rates.v), 0.0, atol=1e-10)
    np.testing.assert_allclose(flat(rates.zeta), flat(field(0.0, zeta0)), rtol=1e-10)


def test_agm_drift_is_minus_grad_of_its_measure_in_the_s_metric(zeta0):
    # AdamE-λ: with S = 1/v^λ, S·∇³L[S] ∝ S ∇ tr(Diag(H)^{1−λ}); the drift is −(α/4)P_S of it
    lam = 0.25
    field = label_noise_slow_agm_quasi_static(loss, BATCH, alpha=ALPHA, V=diagonal, S=inverse_power(lam, 1e-12))
    x, unravel = ravel_pytree(zeta0)
    diag_h = lambda y: jnp.diag(dense_hessian(unravel(y)))
    s = np.asarray((ALPHA * diag_h(x)) ** -lam)
    measure_grad = np.asarray(jax.grad(lambda y: jnp.sum(diag_h(y) ** (1 - lam)))(x))
    projector = np.asarray(tangent_projector(loss, BATCH, zeta0, unravel(jnp.asarray(s))))
    expected = -(ALPHA / 4) * ALPHA**-lam / (1 - lam) * projector @ (s * measure_grad)
    np.testing.assert_allclose(flat(field(0.0, zeta0)), expected, rtol=1e-8)


def test_bad_arguments_are_rejected():
    # an AGM's field needs both V and S (and the coupled one c): each constructor names its inputs
    with pytest.raises(TypeError, match="S"):
        label_noise_slow_agm_quasi_static(loss, BATCH, alpha=ALPHA, V=diagonal)
    with pytest.raises(TypeError, match="c"):
        label_noise_slow_agm(loss, BATCH, alpha=ALPHA, V=diagonal, S=inverse_root(1e-8))
    with pytest.raises(ValueError, match="c"):
        label_noise_slow_agm(loss, BATCH, alpha=ALPHA, V=diagonal, S=inverse_root(1e-8), c=0.0)
    with pytest.raises(ValueError, match="alpha"):
        label_noise_slow_sgd(loss, BATCH, alpha=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        label_noise_slow_agm(loss, BATCH, alpha=0.0, V=diagonal, S=inverse_root(1e-8), c=1.0)


def test_adam_mini_blocks_share_the_preconditioner(zeta0):
    blocks = {"u": jnp.array([0, 0, 1, 1, 1]), "v": jnp.array([2, 2, 2, 3, 3])}
    V = block_mean(blocks)
    v = quasi_static_v(loss, BATCH, zeta0, alpha=ALPHA, V=V)
    values = flat(v)
    assert np.allclose(values[:2], values[0]) and np.allclose(values[2:5], values[2])
    field = label_noise_slow_agm_quasi_static(loss, BATCH, alpha=ALPHA, V=V, S=inverse_root(1e-8))
    assert np.all(np.isfinite(flat(field(0.0, zeta0))))
    np.testing.assert_allclose(jacobian(zeta0) @ flat(field(0.0, zeta0)), 0.0, atol=1e-12)


# --- simulation: label-noise SGD / Adam (β₁ = 0) against the slow ODE -----------------


def simulate_drift(zeta0, *, learning_rate, horizon, seeds, adam, beta2=0.999, eps=1e-8):
    """Mean of Φ(θ_K) − ζ₀ over seeds, K = T/η² noisy steps from ζ₀ (Φ: limit map)."""
    steps = int(round(horizon / learning_rate**2))
    precondition = inverse_root(eps)
    v0 = quasi_static_v(loss, BATCH, zeta0, alpha=ALPHA, V=diagonal)

    def run(key):
        def step(carry, step_key):
            params, v = carry
            signs = jax.random.rademacher(step_key, (N,), dtype=jnp.float64)
            grads = jax.grad(loss)(params, (Z, Y + DELTA * signs))
            if not adam:
                return (jax.tree.map(lambda p, g: p - learning_rate * g, params, grads), v), None
            v = jax.tree.map(lambda a, g: beta2 * a + (1 - beta2) * g * g, v, grads)
            params = jax.tree.map(lambda p, g, s: p - learning_rate * s * g, params, grads, precondition(v))
            return (params, v), None

        (params, v), _ = jax.lax.scan(step, (zeta0, v0), jax.random.split(key, steps))
        return project_to_manifold(loss, BATCH, params, S=precondition(v) if adam else None)

    ends = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(1), seeds))
    return np.asarray(jax.vmap(lambda p: ravel_pytree(p)[0])(ends)).mean(axis=0) - flat(zeta0)


def predicted_drift(zeta0, *, learning_rate, horizon, adam, beta2=0.999, eps=1e-8):
    ts = jnp.array([0.0, horizon])
    if not adam:
        path = solve(jax.jit(label_noise_slow_sgd(loss, BATCH, alpha=ALPHA)), zeta0, ts, rtol=1e-9, atol=1e-11)
    else:
        field = label_noise_slow_agm(loss, BATCH, alpha=ALPHA, V=diagonal, S=inverse_root(eps),
                                     c=(1.0 - beta2) / learning_rate**2)
        state = SlowAGMState(v=quasi_static_v(loss, BATCH, zeta0, alpha=ALPHA, V=diagonal), zeta=zeta0)
        path = solve(jax.jit(field), state, ts, rtol=1e-9, atol=1e-11).zeta
    return flat(jax.tree.map(lambda a: a[-1], path)) - flat(zeta0)


def drift_ratio(simulated, predicted):
    return float(simulated @ predicted / (predicted @ predicted))


def test_sgd_label_noise_drift_matches_the_slow_ode(zeta0):
    simulated = simulate_drift(zeta0, learning_rate=0.01, horizon=0.05, seeds=128, adam=False)
    predicted = predicted_drift(zeta0, learning_rate=0.01, horizon=0.05, adam=False)
    cosine = simulated @ predicted / np.linalg.norm(simulated) / np.linalg.norm(predicted)
    assert 0.85 < drift_ratio(simulated, predicted) < 1.3 and cosine > 0.99


@pytest.mark.slow
@pytest.mark.parametrize("adam", [False, True], ids=["sgd", "adam"])
def test_drift_ratio_tends_to_one_as_the_step_shrinks(zeta0, adam):
    errors = []
    for learning_rate in (0.02, 0.01, 0.005):
        beta2 = 1.0 - 10.0 * learning_rate**2  # c = (1 − β₂)/η² = 10 held fixed
        simulated = simulate_drift(zeta0, learning_rate=learning_rate, horizon=0.05, seeds=256,
                                   adam=adam, beta2=beta2)
        predicted = predicted_drift(zeta0, learning_rate=learning_rate, horizon=0.05, adam=adam,
                                    beta2=beta2)
        errors.append(abs(drift_ratio(simulated, predicted) - 1.0))
    assert errors[1] < 0.3 and errors[2] < 0.15
    assert errors[2] < errors[1] < errors[0]


def test_coupled_field_jacobian_sees_the_preconditioner_move(zeta0):
    # forward-mode Jacobian of the coupled (v, ζ) field against central differences: the
    # semigradient holds S fixed in ζ only, so ∂(dζ)/∂v must not vanish. (The projection is
    # taken from the residuals' Jacobian: an eigendecomposition of A, whose null space is a
    # repeated eigenvalue, has no derivative.)
    coupled = label_noise_slow_agm(loss, BATCH, alpha=ALPHA, V=diagonal, S=inverse_root(1e-8),
                                   c=(1 - 0.999) / 0.01**2, residual_fn=residual)
    v0 = quasi_static_v(loss, BATCH, zeta0, alpha=ALPHA, V=diagonal)
    x, unravel = ravel_pytree(SlowAGMState(v=v0, zeta=zeta0))
    flat_field = jax.jit(lambda y: ravel_pytree(coupled(0.0, unravel(y)))[0])
    forward = np.asarray(jax.jacfwd(flat_field)(x))
    step = 1e-6
    columns = [(flat_field(x + step * e) - flat_field(x - step * e)) / (2 * step)
               for e in jnp.eye(x.size, dtype=x.dtype)]
    differences = np.stack([np.asarray(c) for c in columns], axis=1)
    np.testing.assert_allclose(forward, differences, rtol=1e-5, atol=1e-6 * np.abs(differences).max())
    p = x.size // 2  # ravel order: v then zeta
    assert np.abs(forward[p:, :p]).max() > 1e-3 * np.abs(forward).max()
