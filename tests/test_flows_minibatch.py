"""flows.minibatch: CKS Theorem 3.1 against a literal O(n³) implementation of DESIGN §3.4,
the full-batch reduction to (2.2)–(2.3), truncation, and (slow) the convergence order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import adabias as ab
from adabias.flows import (PiecewiseField, adam_full_batch, adam_minibatch, fit_order,
                           global_error, solve, step_index)
from adabias.flows.minibatch import window_size

jax.config.update("jax_enable_x64", True)

BATCHES = {
    "x": jnp.array([[1.0, 0.5], [-0.7, 1.2], [0.3, -0.9]]),
    "y": jnp.array([1.5, -0.4, 0.8]),
}
PARAMS = {"a": jnp.array([0.9, -0.6]), "b": jnp.array(0.3)}


def loss(params, batch):
    a, b, x, y = params["a"], params["b"], batch["x"], batch["y"]
    residual = y - a[0] * a[1] * x[0] - b * x[1]
    return 0.5 * residual**2 + 0.05 * jnp.sum(a**4) + 0.1 * jnp.sin(a[0] * b) * x[0]


def naive_field(loss_fn, batches, h, beta, rho, eps, n, params, order=1):
    """DESIGN §3.4 written out literally: Python loops, explicit Hessians, O(n³)."""
    x, unravel = ravel_pytree(params)
    m = jax.tree.leaves(batches)[0].shape[0]
    batch = lambda k: jax.tree.map(lambda leaf: leaf[k % m], batches)
    flat = lambda y, k: loss_fn(unravel(y), batch(k))
    grads = [np.asarray(jax.grad(flat)(x, k)) for k in range(m)]
    hessians = [np.asarray(jax.hessian(flat)(x, k)) for k in range(m)]
    g = lambda k: grads[k % m]
    hess = lambda k: hessians[k % m]

    def av(gamma, n_, terms):  # AV_γⁿ[a_·] = 1/(1−γⁿ⁺¹) Σ_{k=0}^{n} γⁿ⁻ᵏ(1−γ) a_k
        return sum(gamma ** (n_ - k) * (1 - gamma) * terms(k) for k in range(n_ + 1)) / (
            1 - gamma ** (n_ + 1))

    big_m = lambda l: av(beta, l, g)
    big_r = lambda l: np.sqrt(av(rho, l, lambda k: g(k) ** 2) + eps)
    q = [big_m(l) / big_r(l) for l in range(n + 1)]
    M, R = big_m(n), big_r(n)
    if order == 0:
        return -M / R
    suffix = lambda k: sum((q[l] for l in range(k, n)), np.zeros_like(M))
    L = av(beta, n, lambda k: hess(k) @ suffix(k))
    L_bar = av(beta, n, lambda k: hess(k) @ q[n])
    P = av(rho, n, lambda k: g(k) * (hess(k) @ suffix(k)))
    P_bar = av(rho, n, lambda k: g(k) * (hess(k) @ q[n]))
    return -M / R + h * (M * (2 * P + P_bar) / (2 * R**3) - (2 * L + L_bar) / (2 * R))


def flat(tree):
    return np.asarray(ravel_pytree(tree)[0])


@pytest.mark.parametrize("truncation, num_steps", [(1e-17, None), (0.0, 40)])
def test_theorem_31_matches_the_literal_formula(truncation, num_steps):
    h, beta, rho, eps = 0.05, 0.8, 0.9, 1e-3
    field = jax.jit(adam_minibatch(loss, BATCHES, h, beta, rho, eps,
                                   num_steps=num_steps, truncation=truncation))
    zeroth = jax.jit(adam_minibatch(loss, BATCHES, h, beta, rho, eps, order=0,
                                    num_steps=num_steps, truncation=truncation))
    for n in (0, 1, 2, 4, 11, 30):
        for frac in (0.0, 0.37):
            t = (n + frac) * h
            got = flat(field(t, PARAMS))
            want = naive_field(loss, BATCHES, h, beta, rho, eps, n, PARAMS)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"n={n}")
            np.testing.assert_allclose(
                flat(zeroth(t, PARAMS)),
                naive_field(loss, BATCHES, h, beta, rho, eps, n, PARAMS, order=0),
                rtol=1e-12, atol=1e-14)


def test_step_index_is_consistent_with_the_jump_grid():
    h = 0.1
    grid = np.asarray(jnp.arange(51) * h)
    idx = jax.jit(lambda t: step_index(t, h))
    for n, t in enumerate(grid):
        assert int(idx(t)) == n
        if n > 0:
            assert int(idx(np.nextafter(t, -np.inf))) == n - 1
    assert int(idx(-1e-3)) == 0


def test_single_batch_reduces_to_full_batch_flow_after_transients():
    h, beta, rho, eps = 0.05, 0.8, 0.9, 1e-3
    one = jax.tree.map(lambda leaf: leaf[:1], BATCHES)
    field = adam_minibatch(loss, one, h, beta, rho, eps)
    full = adam_full_batch(lambda p: loss(p, jax.tree.map(lambda leaf: leaf[0], one)),
                           h, beta, rho, eps)
    want = flat(full(0.0, PARAMS))
    diffs = [np.max(np.abs(flat(field((n + 0.5) * h, PARAMS)) - want)) / np.max(np.abs(want))
             for n in (20, 200)]
    assert diffs[1] < 1e-6 and diffs[1] < 1e-3 * diffs[0], diffs


def test_truncation_changes_nothing_measurable():
    h, beta, rho, eps = 0.05, 0.5, 0.6, 1e-3
    window = window_size(beta, rho)
    assert window < 300
    truncated = jax.jit(adam_minibatch(loss, BATCHES, h, beta, rho, eps))
    exact = jax.jit(adam_minibatch(loss, BATCHES, h, beta, rho, eps, num_steps=320,
                                   truncation=0.0))
    for n in (window - 5, 300, 320):
        a, b = flat(truncated((n + 0.2) * h, PARAMS)), flat(exact((n + 0.2) * h, PARAMS))
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_window_and_argument_validation():
    assert window_size(0.8, 0.9, num_steps=10) == 11
    assert window_size(0.0, 0.0) == 4
    with pytest.raises(ValueError, match="num_steps"):
        window_size(0.8, 0.9, truncation=0.0)
    with pytest.raises(ValueError, match="beta2"):
        adam_minibatch(loss, BATCHES, 0.1, 0.9, 1.5, 1e-3)
    with pytest.raises(ValueError, match="eps"):
        adam_minibatch(loss, BATCHES, 0.1, 0.9, 0.9, 0.0, order=0)
    with pytest.raises(ValueError, match="learning_rate"):
        adam_minibatch(loss, BATCHES, 0.0, 0.9, 0.9, 1e-3)
    with pytest.raises(ValueError, match="batches"):
        adam_minibatch(loss, {"x": jnp.ones((3, 2)), "y": jnp.ones(2)}, 0.1, 0.9, 0.9, 1e-3)


def minibatch_errors(order, step_sizes, horizon=0.96, beta=0.8, rho=0.9, eps=1e-3):
    errors = []
    for h in step_sizes:
        steps = int(round(horizon / h))
        assert steps % 3 == 0  # whole epochs
        trajectory = ab.run(ab.optim.adam(h, beta, rho, eps), loss, PARAMS, steps,
                            batches=BATCHES)
        field = adam_minibatch(loss, BATCHES, h, beta, rho, eps, order=order, num_steps=steps)
        assert isinstance(field, PiecewiseField) and field.step_size == h
        flow = solve(field, PARAMS, jnp.arange(steps + 1) * h)  # jumps at the same grid n·h
        errors.append(global_error(flow, trajectory.params))
    return errors


def test_minibatch_flow_beats_zeroth_order_at_small_h():
    h = [5e-3]
    assert minibatch_errors(1, h, horizon=0.24)[0] < 0.2 * minibatch_errors(0, h, horizon=0.24)[0]


@pytest.mark.slow
def test_minibatch_flow_order_approaches_two():
    step_sizes = [0.02, 0.01, 5e-3, 2.5e-3, 1.25e-3]
    first = fit_order(step_sizes, minibatch_errors(1, step_sizes))
    zeroth = fit_order(step_sizes, minibatch_errors(0, step_sizes))
    print("order-1 local slopes", first.local, "order-0 local slopes", zeroth.local)
    assert first.local[-1] > 1.5, first
    assert 0.6 < zeroth.local[-1] < 1.3, zeroth
