"""flows.fields: modified flows of GD, heavy ball and Adam (CKS (2.2)–(2.7)).

Checked against explicit-Hessian formulas, finite differences of the penalized norms,
the ε → ∞ / ε → 0 limits, and the convergence order against bias-corrected Adam.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import adabias as ab
from adabias.flows.fields import (
    adam_bias,
    adam_bias_coefficient,
    adam_full_batch,
    adam_large_eps_limit,
    adam_small_eps_limit,
    gd_modified,
    heavy_ball_modified,
)
from adabias.flows import fit_order, global_error, solve
from helpers import flat, smooth_loss, smooth_params

jax.config.update("jax_enable_x64", True)

H, BETA, RHO = 0.05, 0.9, 0.95
PARAMS = smooth_params()


loss = smooth_loss




def explicit():
    """Gradient and the Hessian *matrix* (reference only)."""
    x, unravel = ravel_pytree(PARAMS)
    flat_loss = lambda y: loss(unravel(y))
    return np.asarray(jax.grad(flat_loss)(x)), np.asarray(jax.hessian(flat_loss)(x)), x, unravel


def test_fields_match_explicit_hessian_formulas():
    g, hess, _, _ = explicit()
    eps = 1e-3
    a = (1 + BETA) / (1 - BETA) - (1 + RHO) / (1 - RHO)
    c = (1 + RHO) / (1 - RHO)
    expected = {
        "gd": -(g + H / 2 * hess @ g),
        "hb": -(g / (1 - BETA) + H * (1 + BETA) / (4 * (1 - BETA) ** 3) * 2 * hess @ g),
        "adam_bias": H / 2 * (a + c * eps / (g**2 + eps)) * (hess @ (g / np.sqrt(g**2 + eps))),
        "small": -(g + H / 2 * a * hess @ np.sign(g)) / np.abs(g),
        "large": -(g + H / (2 * np.sqrt(eps)) * (1 + BETA) / (1 - BETA) * hess @ g) / np.sqrt(eps),
        "signgd": -g / np.sqrt(g**2 + eps),
    }
    expected["adam"] = -(g + expected["adam_bias"]) / np.sqrt(g**2 + eps)
    fields = {
        "gd": gd_modified(loss, H),
        "hb": heavy_ball_modified(loss, H, BETA),
        "adam_bias": adam_bias(loss, H, BETA, RHO, eps),
        "small": adam_small_eps_limit(loss, H, BETA, RHO),
        "large": adam_large_eps_limit(loss, H, BETA, eps),
        "signgd": adam_full_batch(loss, H, BETA, RHO, eps, order=0),
        "adam": adam_full_batch(loss, H, BETA, RHO, eps),
    }
    for name, field in fields.items():
        out = jax.jit(field)(0.0, PARAMS)
        assert jax.tree.structure(out) == jax.tree.structure(PARAMS), name
        np.testing.assert_allclose(flat(out), expected[name], rtol=1e-12, atol=1e-12, err_msg=name)


def central_gradient(fn, x, step=1e-5):
    out = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = step
        out[i] = (fn(x + e) - fn(x - e)) / (2 * step)
    return out


def test_derivative_terms_match_finite_differences_of_gradient_norms():
    g, _, x, unravel = explicit()
    grad = lambda y: ravel_pytree(jax.grad(loss)(unravel(jnp.asarray(y))))[0]
    eps = 1e-2
    fd_sq = central_gradient(lambda y: float(jnp.sum(grad(y) ** 2)), np.asarray(x))
    fd_one = central_gradient(lambda y: float(jnp.sum(jnp.sqrt(grad(y) ** 2 + eps))), np.asarray(x))
    # GD: f = −(∇E + (h/4)∇‖∇E‖²)
    from_gd = -(4 / H) * (flat(gd_modified(loss, H)(0.0, PARAMS)) + g)
    np.testing.assert_allclose(from_gd, fd_sq, rtol=1e-7, atol=1e-8)
    # heavy ball: f = −∇E/(1−β) − h(1+β)/(4(1−β)³)∇‖∇E‖²
    hb = flat(heavy_ball_modified(loss, H, BETA)(0.0, PARAMS))
    from_hb = -(hb + g / (1 - BETA)) * 4 * (1 - BETA) ** 3 / (H * (1 + BETA))
    np.testing.assert_allclose(from_hb, fd_sq, rtol=1e-7, atol=1e-8)
    # Adam: bias = (h/2) c ∇‖∇E‖₁,ε ; and the full field recombines it
    coefficient = flat(adam_bias_coefficient(jax.grad(loss)(PARAMS), BETA, RHO, eps))
    bias = flat(adam_bias(loss, H, BETA, RHO, eps)(0.0, PARAMS))
    np.testing.assert_allclose(2 * bias / (H * coefficient), fd_one, rtol=1e-7, atol=1e-8)
    adam = flat(adam_full_batch(loss, H, BETA, RHO, eps)(0.0, PARAMS))
    np.testing.assert_allclose(-adam * np.sqrt(g**2 + eps) - g, bias, rtol=1e-12, atol=1e-14)


def test_bias_coefficient_sign_and_equal_betas():
    g = {"a": jnp.array([1e-6, 1.0, 100.0])}
    eps = 1e-4
    c = (1 + 0.9) / (1 - 0.9)
    # β = ρ: only the ε-term survives
    equal = adam_bias_coefficient(g, 0.9, 0.9, eps)["a"]
    np.testing.assert_allclose(equal, c * eps / (g["a"] ** 2 + eps), rtol=1e-14)
    # Table 1: small ε (|g| ≫ √ε): sign of (1+β)/(1−β) − (1+ρ)/(1−ρ); large ε: ≈ (1+β)/(1−β)
    assert adam_bias_coefficient(g, 0.95, 0.9, eps)["a"][2] > 0
    assert adam_bias_coefficient(g, 0.9, 0.95, eps)["a"][2] < 0
    np.testing.assert_allclose(adam_bias_coefficient(g, 0.9, 0.95, eps)["a"][0], c, rtol=1e-7)


def relative(a, b):
    a, b = flat(a), flat(b)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def test_large_eps_limit_is_approached_by_the_full_field():
    errors = [relative(adam_full_batch(loss, H, BETA, RHO, eps)(0.0, PARAMS),
                       adam_large_eps_limit(loss, H, BETA, eps)(0.0, PARAMS))
              for eps in (1e2, 1e4, 1e6)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-5
    assert 50 < errors[1] / errors[2] < 200  # O(|∇E|²/ε)


def test_small_eps_limit_is_approached_by_the_full_field():
    g, _, _, _ = explicit()
    assert np.min(np.abs(g)) > 0.1
    limit = adam_small_eps_limit(loss, H, BETA, RHO)(0.0, PARAMS)
    errors = [relative(adam_full_batch(loss, H, BETA, RHO, eps)(0.0, PARAMS), limit)
              for eps in (1e-4, 1e-6, 1e-8)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-6


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: gd_modified(loss, 0.0), "learning_rate"),
        (lambda: heavy_ball_modified(loss, 0.1, 1.0), "beta"),
        (lambda: adam_full_batch(loss, 0.1, -0.1, 0.9, 1e-8), "beta1"),
        (lambda: adam_full_batch(loss, 0.1, 0.9, 1.0, 1e-8), "beta2"),
        (lambda: adam_full_batch(loss, 0.1, 0.9, 0.9, 0.0), "eps"),
        (lambda: adam_full_batch(loss, 0.1, 0.9, 0.9, 1e-8, order=2), "order"),
        (lambda: adam_large_eps_limit(loss, 0.1, 0.9, -1.0), "eps"),
        (lambda: adam_small_eps_limit(loss, -0.1, 0.9, 0.9), "learning_rate"),
        (lambda: adam_bias(loss, 0.1, 0.9, 0.9, float("nan")), "eps"),
    ],
)
def test_invalid_hyperparameters_are_rejected_by_name(build, name):
    with pytest.raises(ValueError, match=name):
        build()


# --- convergence order on the bilinear model (DESIGN §3.2) ---------------------------

def bilinear(theta):
    return 0.5 * (1.5 - 2.0 * theta[0] * theta[1]) ** 2


def adam_errors(order, step_sizes, horizon=0.4, beta=0.9, rho=0.95, eps=1e-6):
    theta0 = jnp.array([2.8, 3.5])
    errors = []
    for h in step_sizes:
        steps = int(round(horizon / h))
        trajectory = ab.run(ab.optim.adam(h, beta, rho, eps), bilinear, theta0, steps)
        field = adam_full_batch(bilinear, h, beta, rho, eps, order=order)
        flow = solve(field, theta0, jnp.arange(steps + 1) * h)
        errors.append(global_error(flow, trajectory.params))
    return errors


def test_adam_full_batch_flow_has_order_two_and_signgd_order_one():
    step_sizes = [2e-3, 1e-3, 5e-4, 2.5e-4]
    first = fit_order(step_sizes, adam_errors(1, step_sizes))
    assert 1.8 <= first.order <= 2.2, first
    assert all(1.8 <= s <= 2.2 for s in first.local), first
    zeroth = fit_order(step_sizes[-2:], adam_errors(0, step_sizes[-2:]))
    assert 0.8 <= zeroth.order <= 1.2, zeroth


def test_gd_modified_flow_has_order_two():
    theta0 = jnp.array([0.9, 0.6])
    step_sizes, errors = [4e-3, 2e-3, 1e-3], []
    for h in step_sizes:
        steps = int(round(0.4 / h))
        trajectory = ab.run(ab.optim.gd(h), bilinear, theta0, steps)
        flow = solve(gd_modified(bilinear, h), theta0, jnp.arange(steps + 1) * h)
        errors.append(global_error(flow, trajectory.params))
    fit = fit_order(step_sizes, errors)
    assert 1.8 <= fit.order <= 2.2, (errors, fit)
