"""flows.solve (plain and piecewise fields), switch, global_error and fit_order against closed
forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adabias.flows import PiecewiseField, fit_order, global_error, solve, switch

jax.config.update("jax_enable_x64", True)


def test_solve_linear_flow_on_a_pytree_matches_the_exponential():
    ts = jnp.linspace(0.0, 2.0, 7)
    ys = solve(lambda t, y, args: {"a": -y["a"], "b": 2.0 * y["b"]},
               {"a": jnp.array([1.0, 3.0]), "b": jnp.array(0.5)}, ts)
    np.testing.assert_allclose(ys["a"], np.exp(-ts)[:, None] * np.array([1.0, 3.0]), rtol=1e-10)
    np.testing.assert_allclose(ys["b"], 0.5 * np.exp(2.0 * ts), rtol=1e-8)  # growing: errors accumulate


def test_piecewise_field_with_jumps_is_solved_to_high_accuracy():
    h = 0.1
    # rate n on [nh, (n+1)h)
    field = PiecewiseField(lambda t, y, args: -jnp.floor(t / h + 1e-12) * y, h)
    ts = jnp.arange(0, 11) * h
    ys = solve(field, jnp.array(1.0), ts)
    expected = np.exp(-h * np.cumsum(np.r_[0, np.arange(10)]))
    np.testing.assert_allclose(ys, expected, rtol=1e-9)
    # the jumps are the grid n·h inside [t0, t1], endpoints included
    np.testing.assert_array_equal(field.jump_times(0.0, 1.0), ts)
    np.testing.assert_array_equal(field.jump_times(0.25, 0.5), ts[3:6])


def test_switch_picks_a_field_by_a_traced_index_and_keeps_the_jumps():
    fields = [lambda t, y, args: -y, lambda t, y, args: 2.0 * y]
    picked = jax.jit(lambda i, y: switch(fields, i)(0.0, y))
    assert float(picked(0, 3.0)) == -3.0 and float(picked(1, 3.0)) == 6.0
    pieces = [PiecewiseField(f, h) for f, h in zip(fields, (0.1, 0.2))]
    assert float(jax.jit(lambda i: switch(pieces, i).step_size)(1)) == 0.2
    with pytest.raises(ValueError, match="PiecewiseField"):
        switch([fields[0], pieces[1]], 0)


def test_global_error_is_the_sup_over_steps_of_the_max_norm():
    a = {"x": jnp.zeros((3, 2))}
    b = {"x": jnp.array([[0.0, 0.1], [-0.3, 0.0], [0.2, 0.0]])}
    assert global_error(a, b) == pytest.approx(0.3)


def test_fit_order_recovers_an_exact_power_law_and_a_noisy_one():
    h = np.geomspace(1e-3, 1e-1, 6)
    exact = fit_order(h, 3.0 * h**2)
    assert exact.order == pytest.approx(2.0, abs=1e-10)
    assert all(s == pytest.approx(2.0) for s in exact.local)
    noisy = fit_order(h, 3.0 * h**2 * np.exp(0.1 * np.sin(np.arange(6) * 7)))
    assert noisy.interval[0] < noisy.order < noisy.interval[1]
    assert noisy.interval[0] < 2.0 < noisy.interval[1]
    with pytest.raises(ValueError, match="positive and finite"):
        fit_order([0.1, 0.2], [0.0, 1.0])
