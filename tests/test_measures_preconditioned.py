"""measures.preconditioned: λ_max(P^{−1/2}HP^{−1/2}) by Lanczos against a dense eigenvalue
computation, the stability threshold 2(1+β₁)/((1−β₁)h) against heavy ball's own iteration
matrix, and bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

jax.config.update("jax_enable_x64", True)

import adabias as ab  # noqa: E402

PARAMS = {"w": jnp.array([[0.7, -1.3], [0.2, 0.5]]), "b": jnp.array([0.4, -0.1])}
V_HAT = {"w": jnp.array([[1e-2, 3e-4], [2.0, 5e-3]]), "b": jnp.array([1e-6, 0.3])}


def loss(params, scale=1.0):
    w, b = params["w"], params["b"]
    return scale * (jnp.sum(jnp.tanh(w @ b + 0.3) ** 2) + 0.25 * jnp.sum(w**4)
                    + jnp.sum(jnp.sin(b) * w[:, 0]))


def dense(params, v_hat, eps, inside, scale=1.0):
    x, unravel = ravel_pytree(params)
    hessian = np.asarray(jax.hessian(lambda y: loss(unravel(y), scale))(x))
    v = np.asarray(ravel_pytree(v_hat)[0])
    p = np.sqrt(v + eps) if inside else np.sqrt(v) + eps
    return np.linalg.eigvalsh(hessian / np.sqrt(np.outer(p, p)))[-1]


@pytest.mark.parametrize("inside", [True, False])
@pytest.mark.parametrize("eps", [1e-8, 1e-3])
def test_preconditioned_sharpness_matches_a_dense_eigenvalue(inside, eps):
    got = ab.measures.preconditioned_sharpness(loss, PARAMS, V_HAT, eps, eps_inside_sqrt=inside)
    np.testing.assert_allclose(float(got), dense(PARAMS, V_HAT, eps, inside), rtol=1e-10)
    # extra loss arguments pass through
    got = ab.measures.preconditioned_sharpness(loss, PARAMS, V_HAT, eps, 2.0,
                                               eps_inside_sqrt=inside)
    np.testing.assert_allclose(float(got), dense(PARAMS, V_HAT, eps, inside, 2.0), rtol=1e-10)


def test_preconditioner_forms():
    v = jnp.array([0.0, 4.0])
    np.testing.assert_allclose(ab.measures.adaptive_preconditioner(v, 1e-2), np.sqrt([1e-2, 4.01]))
    np.testing.assert_allclose(ab.measures.adaptive_preconditioner(v, 1e-2, eps_inside_sqrt=False),
                               [1e-2, 2.01])


@pytest.mark.parametrize("beta1", [0.0, 0.5, 0.9])
def test_threshold_is_where_frozen_adam_on_a_quadratic_loses_stability(beta1):
    # m ← β₁m + (1−β₁)λθ, θ ← θ − h·m: its iteration matrix has spectral radius 1 at hλ = thr·h
    h = 1e-2
    threshold = float(ab.measures.stability_threshold(h, beta1))
    np.testing.assert_allclose(threshold, 2 * (1 + beta1) / ((1 - beta1) * h), rtol=1e-14)

    def radius(lam):
        step = np.array([[beta1, (1 - beta1) * lam], [-h * beta1, 1 - h * (1 - beta1) * lam]])
        return np.max(np.abs(np.linalg.eigvals(step)))

    assert radius(0.99 * threshold) < 1 < radius(1.01 * threshold)
    np.testing.assert_allclose(float(ab.measures.stability_ratio(threshold / 2, h, beta1)), 0.5)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="v_hat must be shaped like params"):
        ab.measures.preconditioned_sharpness(loss, PARAMS, jnp.ones(3), 1e-8)
    with pytest.raises(ValueError, match="eps"):
        ab.measures.preconditioned_sharpness(loss, PARAMS, V_HAT, 0.0)
    with pytest.raises(ValueError, match="learning_rate"):
        ab.measures.stability_threshold(0.0, 0.9)
    with pytest.raises(ValueError, match="beta1"):
        ab.measures.stability_ratio(1.0, 1e-3, 1.0)
