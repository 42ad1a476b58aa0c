"""cks.flow_order, cks.thm31, cks.example23, flows.solve_steps and flows.step_counts.

solve_steps against closed-form solutions (smooth and piecewise fields, vmap and lax.map);
Example 2.3's correspondence (Adam with large ε = heavy ball with step h(1−β)/√ε; the time
change between heavy ball's flow and (2.7)) against a plain NumPy heavy-ball loop; each
experiment run on tiny settings through the report runner, its claims re-decided from the
data it wrote.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import adabias as ab  # noqa: E402
from adabias import flows  # noqa: E402
from adabias.experiments import cks_example23  # noqa: E402
from adabias.flows import PiecewiseField, step_index  # noqa: E402
from helpers import read_csv, run_tiny  # noqa: E402


# --- flows.solve_steps ----------------------------------------------------------------------

def test_solve_steps_matches_the_exponential_for_each_step_size():
    # θ̇ = −a(1 + h)θ: θ(nh) = θ₀ exp(−a(1 + h)nh), h and a traced
    step_sizes, counts, rates = [0.1, 0.05, 0.025], [3, 10, 7], [1.0, 2.0, 0.5]
    theta0 = {"u": jnp.array([1.0, -2.0]), "v": jnp.array(3.0)}
    solutions = flows.solve_steps(
        lambda h, a: (lambda t, y, args: jax.tree.map(lambda x: -a * (1.0 + h) * x, y)),
        theta0, step_sizes, counts, hyper={"a": rates})
    for h, n, a, sol in zip(step_sizes, counts, rates, solutions):
        decay = np.exp(-a * (1 + h) * h * np.arange(n + 1))
        assert sol["u"].shape == (n + 1, 2) and sol["v"].shape == (n + 1,)
        np.testing.assert_allclose(sol["u"], decay[:, None] * np.array([1.0, -2.0]), rtol=1e-8)
        np.testing.assert_allclose(sol["v"], 3.0 * decay, rtol=1e-8)


def test_solve_steps_piecewise_field_matches_the_product_of_exponentials():
    # rate n + 1 on [nh, (n+1)h): θ(t_n) = exp(−h Σ_{k<n} (k + 1)); solves one after another
    step_sizes, counts = [0.1, 0.04], [6, 15]
    solutions = flows.solve_steps(
        lambda h: PiecewiseField(lambda t, y, args: -(step_index(t, h) + 1.0) * y, h),
        jnp.array(1.0), step_sizes, counts, sequential=True)
    for h, n, sol in zip(step_sizes, counts, solutions):
        expected = np.exp(-h * np.cumsum(np.r_[0, np.arange(1, n + 1)]))
        np.testing.assert_allclose(sol, expected, rtol=1e-9)


def test_solve_steps_rejects_bad_arguments():
    field = lambda h: (lambda t, y, args: -y)
    with pytest.raises(ValueError, match="equal length"):
        flows.solve_steps(field, jnp.array(1.0), [0.1, 0.2], [3])
    with pytest.raises(ValueError, match="positive"):
        flows.solve_steps(field, jnp.array(1.0), [0.1, -0.2], [3, 4])
    with pytest.raises(ValueError, match="hyper"):
        flows.solve_steps(lambda h, a: field(h), jnp.array(1.0), [0.1, 0.2], [3, 4],
                          hyper={"a": [1.0]})


def test_step_counts_require_whole_steps_and_epochs():
    assert flows.step_counts([0.1, 0.05], 0.6, multiple=3) == [6, 12]
    with pytest.raises(ValueError, match="horizon"):
        flows.step_counts([0.07], 0.6)
    with pytest.raises(ValueError, match="multiple of 3"):
        flows.step_counts([0.15], 0.6, multiple=3)


# --- Example 2.3: Adam with large ε is heavy ball; the time change ----------------------------

def bilinear_grad(theta):
    """∇E for E = ½(y − θ₁θ₂x)², x = 2, y = 3/2, by hand."""
    residual = 1.5 - 2.0 * theta[0] * theta[1]
    return -residual * 2.0 * np.array([theta[1], theta[0]])


def test_large_eps_adam_without_bias_correction_is_heavy_ball_with_rescaled_step():
    h, beta, eps, steps = 2e5, 0.9, 1e12, 60
    eta = cks_example23.heavy_ball_step(h, beta, eps)
    assert eta == pytest.approx(h * (1 - beta) / 1e6)
    theta0 = np.array([0.9, 0.6])
    # plain loop: θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ − η∇E(θ⁽ⁿ⁾) + β(θ⁽ⁿ⁾ − θ⁽ⁿ⁻¹⁾), θ⁽⁻¹⁾ = θ⁽⁰⁾
    previous, current, loop = theta0.copy(), theta0.copy(), [theta0.copy()]
    for _ in range(steps):
        step = -eta * bilinear_grad(current) + beta * (current - previous)
        previous, current = current, current + step
        loop.append(current.copy())
    adam = ab.run(ab.optim.adam(h, beta, 0.999, eps, bias_correction=False),
                  ab.problems.bilinear_loss, jnp.asarray(theta0), steps)
    # √(ν̂ + ε) = √ε (1 + O(|∇E|²/ε)) with |∇E|²/ε ≈ 6e-13
    np.testing.assert_allclose(adam.params, np.array(loop), rtol=1e-10, atol=1e-12)
    # bias correction instead makes the first step the flow's: −(h/√ε)∇E(θ⁽⁰⁾), 1/(1−β) times
    # heavy ball's −η∇E(θ⁽⁰⁾)
    corrected = ab.run(ab.optim.adam(h, beta, 0.999, eps), ab.problems.bilinear_loss,
                       jnp.asarray(theta0), 1)
    np.testing.assert_allclose(corrected.params[1] - theta0, -h / 1e6 * bilinear_grad(theta0),
                               rtol=1e-10)


def test_heavy_ball_flow_in_adam_time_is_the_large_eps_flow():
    # dθ/dt = (η/h)·dθ/ds with η = h(1−β)/√ε, at several points, and the explicit (2.7)
    h, beta, eps = 30.0, 0.8, 1e6
    eta = cks_example23.heavy_ball_step(h, beta, eps)
    heavy_ball = flows.heavy_ball_modified(ab.problems.bilinear_loss, eta, beta)
    large_eps = flows.adam_large_eps_limit(ab.problems.bilinear_loss, h, beta, eps)
    for theta in ([0.9, 0.6], [2.8, 3.5], [-0.3, 1.7]):
        theta = jnp.asarray(theta)
        g = bilinear_grad(np.asarray(theta))
        hessian = np.asarray(jax.hessian(ab.problems.bilinear_loss)(theta))
        root = np.sqrt(eps)
        explicit = -(g + h / (2 * root) * (1 + beta) / (1 - beta) * hessian @ g) / root
        np.testing.assert_allclose(eta / h * np.asarray(heavy_ball(0.0, theta)), explicit,
                                   rtol=1e-12)
        np.testing.assert_allclose(np.asarray(large_eps(0.0, theta)), explicit, rtol=1e-12)


# --- the experiments on tiny settings ----------------------------------------------------------

def _redecided(step_sizes, errors, expected, points, tolerance):
    order = np.argsort(step_sizes)[:points]
    slope = np.polyfit(np.log(step_sizes[order]), np.log(errors[order]), 1)[0]
    return slope, abs(slope - expected) < tolerance


@pytest.mark.slow
def test_flow_order_tiny_run_writes_claims_that_follow_from_its_data(tmp_path):
    record = run_tiny(tmp_path, "cks.flow_order", step_sizes=(2e-3, 1e-3, 5e-4),
                       asymptotic_points=3, beta=0.9, rho=0.95, bilinear_eps=1e-6,
                       tanh_net_eps=1e-3, horizon=0.1)
    claims = {c["id"]: c for c in record.claims}
    rmsprop_held = []
    for model in ("bilinear", "tanh_net"):
        table = read_csv(tmp_path / f"data/cks.flow_order.{model}.csv")
        for order in (1, 0):
            claim = claims[f"cks.flow_order.{model}_order{order}"]
            slope, held = _redecided(table["step_size"], table[f"adam_order{order}"], 1.0 + order,
                                     3, 0.3)
            assert claim["numbers"]["fitted_order"] == pytest.approx(slope, rel=1e-9)
            assert claim["held"] == held
            rmsprop_held.append(_redecided(table["step_size"], table[f"rmsprop_order{order}"],
                                           1.0 + order, 3, 0.3)[1])
        assert table["adam_eps_outside_order1"].shape == (3,)
    assert claims["cks.flow_order.rmsprop"]["held"] == all(rmsprop_held)


@pytest.mark.slow
def test_thm31_tiny_run_writes_claims_that_follow_from_its_data(tmp_path):
    record = run_tiny(tmp_path, "cks.thm31", step_sizes=(0.04, 0.02), horizon=0.48,
                       asymptotic_points=2, single_batch_steps=90)
    claims = {c["id"]: c for c in record.claims}
    table = read_csv(tmp_path / "data/cks.thm31.orders.csv")
    assert np.all(table["num_steps"] % 3 == 0)
    for order in (1, 0):
        slope, held = _redecided(table["step_size"], table[f"order{order}"], 1.0 + order, 2, 0.3)
        assert claims[f"cks.thm31.order{order}"]["numbers"]["fitted_order"] == pytest.approx(slope)
        assert claims[f"cks.thm31.order{order}"]["held"] == held
    single = read_csv(tmp_path / "data/cks.thm31.single_batch.csv")
    tail = claims["cks.thm31.single_batch"]["numbers"]["tail_starts_at_n"]
    assert tail == int(np.ceil(np.log(1e-16) / np.log(0.6)))
    assert claims["cks.thm31.single_batch"]["held"] == bool(
        np.max(single["relative_field_difference"][tail:]) < 1e-12)
    assert single["relative_field_difference"][0] > 1e-6  # the transient is real


def test_example23_tiny_run_writes_claims_that_follow_from_its_data(tmp_path):
    record = run_tiny(tmp_path, "cks.example23", lr_over_root_eps=(2.5e-3, 1.25e-3, 6.25e-4),
                       asymptotic_points=3)
    claims = {c["id"]: c for c in record.claims}
    table = read_csv(tmp_path / "data/cks.example23.errors.csv")
    nu = table["lr_over_root_eps"]
    np.testing.assert_allclose(table["heavy_ball_step"], nu * (1 - 0.9), rtol=1e-12)
    np.testing.assert_allclose(table["adam_step"], nu * 1e6, rtol=1e-12)
    slope, held = _redecided(nu, table["adam_vs_large_eps_flow"], 2.0, 3, 0.3)
    assert claims["cks.example23.adam"]["numbers"]["fitted_order"] == pytest.approx(slope)
    assert claims["cks.example23.adam"]["held"] == held
    assert claims["cks.example23.rescaling"]["held"] == bool(
        np.max(table["large_eps_flow_vs_heavy_ball_flow"]) < 1e-8)
    # zero-initial-momentum heavy ball: error within 30 % of its predicted O(h) offset
    np.testing.assert_allclose(table["heavy_ball_vs_heavy_ball_flow"],
                               table["heavy_ball_predicted_offset"], rtol=0.3)
