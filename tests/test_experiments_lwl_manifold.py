"""What the LWL near-manifold experiments add: closed-form measures, sparsity, helpers, tiny runs.

Independent references: dense Hessians (jax.hessian) with the block statistics applied in
NumPy, jax.grad for the hand-written gradient of the NumPy AGM loop, values known by hand, and
the slow-ODE tracking numbers written out by hand.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

jax.config.update("jax_enable_x64", True)

from adabias import measures, testing  # noqa: E402
from adabias.experiments import base, lwl_adame, lwl_slow_ode, lwl_table1  # noqa: E402
from adabias.optim import agm, block_mean, diagonal, inverse_root, leaf_mean  # noqa: E402
from adabias.problems import diagonal_net_loss  # noqa: E402
from adabias.problems import (sinh_regression_hessian_diag_on_manifold, sinh_regression_loss,  # noqa: E402
                              sinh_regression_measure, sinh_regression_min_measure_point)
from adabias.problems.diagonal_net import diagonal_net_diag_power_trace, diagonal_net_pair_blocks  # noqa: E402
from adabias.studies import label_noise, slow_ode  # noqa: E402

D, N = 5, 3


def manifold_point(seed: int):
    """Random (u, v) and Gaussian features with labels y = Z(u² − v²): zero residual, a point of Γ."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(N, D))
    u, v = rng.normal(size=D), rng.normal(size=D)
    batch = {"z": jnp.asarray(z), "y": jnp.asarray(z @ (u**2 - v**2))}
    return {"u": jnp.asarray(u), "v": jnp.asarray(v)}, batch


def dense_diag(params, batch) -> np.ndarray:
    x, unravel = ravel_pytree(params)
    return np.diag(np.asarray(jax.hessian(lambda y: diagonal_net_loss(unravel(y), batch))(x)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_and_power_closed_forms_against_dense_hessian(seed):
    params, batch = manifold_point(seed)
    h = dense_diag(params, batch)  # flat order (u, v)
    pairs = np.tile((h[:D] + h[D:]) / 2, 2)
    leaves = np.concatenate([np.full(D, h[:D].mean()), np.full(D, h[D:].mean())])
    closed = lambda row, lam=0.5: float(lwl_table1.row(row, lwl_table1.SETTINGS, lam).closed_form(params, batch["z"]))
    np.testing.assert_allclose(closed("Adam"), np.sum(np.sqrt(h)), rtol=1e-10)
    np.testing.assert_allclose(closed("RMSProp"), np.sum(np.sqrt(h)), rtol=1e-10)
    np.testing.assert_allclose(closed("Adam-mini"), np.sum(np.sqrt(pairs)), rtol=1e-10)
    np.testing.assert_allclose(closed("Adalayer"), np.sum(np.sqrt(leaves)), rtol=1e-10)
    for lam in (0.25, 0.75):
        np.testing.assert_allclose(closed("AdamE", lam), np.sum(h ** (1 - lam)), rtol=1e-10)
    # and the library's HVP path with the optimizers' own V agrees
    hvp_pairs = measures.diag_power_trace(diagonal_net_loss, params, batch, power=0.5,
                                          statistic=block_mean(diagonal_net_pair_blocks(D)))
    hvp_leaves = measures.diag_power_trace(diagonal_net_loss, params, batch, power=0.5, statistic=leaf_mean)
    np.testing.assert_allclose([hvp_pairs, hvp_leaves], [closed("Adam-mini"), closed("Adalayer")], rtol=1e-10)
    for power in (1.0, 0.5, 0.25):
        np.testing.assert_allclose(diagonal_net_diag_power_trace(params, batch["z"], power),
                                   np.sum(h**power), rtol=1e-10)
    with pytest.raises(ValueError, match="row"):
        lwl_table1.row("SGD", lwl_table1.SETTINGS)


def test_side_by_side_equals_separate_runs():
    params, batch = manifold_point(6)
    start = jax.tree.map(lambda a: a + 0.2, params)
    optimizers = {"gd": optax.sgd(0.05), "agm": agm(0.01, 0.9, 0.95, diagonal, inverse_root(1e-8))}
    combined = label_noise.side_by_side(optimizers)
    loss = lambda p: sum(diagonal_net_loss(q, batch) for q in p.values())
    both = {name: start for name in optimizers}
    state = combined.init(both)
    separate = {name: (start, opt.init(start)) for name, opt in optimizers.items()}
    for _ in range(5):
        updates, state = combined.update(jax.grad(loss)(both), state, both)
        both = optax.apply_updates(both, updates)
        for name, opt in optimizers.items():
            p, s = separate[name]
            u, s = opt.update(jax.grad(diagonal_net_loss)(p, batch), s, p)
            separate[name] = (optax.apply_updates(p, u), s)
    for name in optimizers:
        np.testing.assert_allclose(ravel_pytree(both[name])[0], ravel_pytree(separate[name][0])[0], rtol=1e-14)


def test_numpy_agm_loop_gradient_is_the_autodiff_gradient():
    params, batch = manifold_point(3)
    params = jax.tree.map(lambda a: a + 0.1, params)  # off Γ: a non-zero gradient
    y = np.asarray(batch["y"])[None] + 0.3
    # β₁ = 0, S ≡ 1: one step of the loop is one gradient step
    z = np.asarray(batch["z"])
    path = testing.agm_reference(lambda k, theta: testing.diagonal_net_gradient(theta, z, y[k]),
                                 ravel_pytree(params)[0], 1, learning_rate=0.1, beta1=0.0, beta2=0.5,
                                 V=lambda g2: g2, S=lambda v: np.ones_like(v))
    grad = ravel_pytree(jax.grad(diagonal_net_loss)(params, {"z": batch["z"], "y": jnp.asarray(y[0])}))[0]
    np.testing.assert_allclose(path[1], ravel_pytree(params)[0] - 0.1 * np.asarray(grad), rtol=1e-12)


def test_forced_numpy_loop_recomputes_each_step_of_a_run_and_catches_a_wrong_one():
    params, batch = manifold_point(3)
    z = np.asarray(batch["z"])
    y = np.asarray(batch["y"])[None] + 0.3 * np.asarray([[1.0], [-1.0], [1.0], [1.0]])[:, :1]
    gradient = lambda k, theta: testing.diagonal_net_gradient(theta, z, y[k])  # noqa: E731
    options = dict(learning_rate=0.05, beta1=0.9, beta2=0.95, V=lambda g2: g2,
                   S=lambda v: 1.0 / (np.sqrt(v) + 1e-8))
    free = testing.agm_reference(gradient, ravel_pytree(params)[0], y.shape[0], **options)
    # along its own path, the loop gives the same path
    again = testing.agm_reference_along(gradient, free, **options)
    np.testing.assert_allclose(again, free, rtol=1e-13, atol=1e-15)
    # a path with a wrong step (θ_2 moved) is caught there, and not before
    wrong = free.copy()
    wrong[2] += 1e-6
    check = testing.agm_reference_along(gradient, wrong, **options)
    gaps = np.max(np.abs(check - wrong), axis=1)
    assert np.all(gaps[:2] < 1e-13) and gaps[2] > 5e-7


def test_first_index_below_measure_drop_and_matched_learning_rate():
    from adabias.studies.curves import first_index_below

    assert first_index_below(np.array([1.0, 0.5, 0.01, 0.2]), 0.05, or_equal=True) == 2
    assert first_index_below(np.array([1.0, 0.5]), 0.05, or_equal=True) == -1
    assert first_index_below(np.array([1.0, 0.05]), 0.05, or_equal=True) == 1
    assert first_index_below(np.array([1.0, 0.05]), 0.05) == -1
    np.testing.assert_allclose(lwl_adame.matched_learning_rate(0.5, 0.004, 0.05), 0.004)
    np.testing.assert_allclose(lwl_adame.matched_learning_rate(0.75, 0.004, 0.05), 0.004 * 0.05**0.25)
    loss, values = np.array([1.0, 0.5, 0.01, 0.02, 0.01]), np.array([9.0, 8.0, 7.0, 5.0, 4.0])
    drop = label_noise.measure_drop(values, loss, small_loss=0.05, last_records=2)
    assert drop == (2, 7.0, 4.5) and drop.decreased
    assert drop.numbers(np.arange(5) * 10) == {"step_loss_small": 20, "at_that_step": 7.0, "late_mean": 4.5}
    never = label_noise.measure_drop(values, loss + 1.0, small_loss=0.05, last_records=2)
    assert never.start == -1 and np.isnan(never.at_start) and not never.decreased


def test_adame_experiment_on_tiny_settings_decides_its_claims():
    settings = dataclasses.replace(lwl_adame.TIERS.quick, num_steps=400, save_every=100, num_seeds=1,
                                   last_records=2, sc_d=12, sc_k=1, sc_ns=(3, 6), sc_num_datasets=1,
                                   sc_num_steps=200, sc_save_every=100)
    result = lwl_adame.EXPERIMENT.run(settings, base.Context(progress=False))
    base.check_result(lwl_adame.EXPERIMENT, result)
    curves = result.data["curves"]
    assert len(curves["step"]) == 5 and all(len(values) == 5 for values in curves.values())
    assert all(np.all(np.isfinite(values)) for values in curves.values())
    assert set(result.figures) == {"adame"}
    claim = {c.id: c for c in result.claims}["lwl.adame.sample_complexity"]
    stars, sgd = claim.numbers["n_star_by_lam"], claim.numbers["n_star_sgd"]
    assert claim.held == (all(b <= a for a, b in zip(stars, stars[1:])) and all(v < sgd for v in stars))
    assert claim.held or claim.note
    assert list(result.data["sample_complexity"]["n"]) == [3, 6]
    assert list(result.data["retired_sparsity"]["lam"]) == [0.25, 0.5, 0.75]


@pytest.mark.slow
def test_slow_ode_experiment_on_tiny_settings_decides_its_claims():
    settings = dataclasses.replace(lwl_slow_ode.QUICK, learning_rates=(0.04, 0.02), num_seeds=16, horizon=0.04,
                                   ode_horizon=0.08, ode_points=5, sinh_ode_horizon=2.0, sinh_ode_points=5)
    result = lwl_slow_ode.EXPERIMENT.run(settings, base.Context(progress=False))
    base.check_result(lwl_slow_ode.EXPERIMENT, result)
    assert len(result.data["tracking"]["distance"]) == 2
    assert len(result.data["sinh_tracking"]["distance"]) == 2
    sinh_ode = result.data["sinh_ode"]
    assert len(sinh_ode["t"]) == 6 and np.all(np.diff(sinh_ode["root_diag_trace"]) < 0)  # 5 points and T


def test_tracking_numbers_by_hand():
    # ζ₀ = 0, ζ(T) = (1, 0); two η with the end points on Γ of two seeds each
    zeta0, zeta_t = {"a": jnp.zeros(2)}, {"a": jnp.array([1.0, 0.0])}
    ends = [{"a": jnp.array([[1.0, 1.0], [1.0, -1.0]])}, {"a": jnp.array([[0.5, 0.0], [0.5, 0.0]])}]
    tracking = slow_ode.tracking(zeta0, zeta_t, ends, learning_rates=(0.1, 0.05), horizon=0.02)
    np.testing.assert_array_equal(tracking.steps, [2, 8])  # K = T/η²
    np.testing.assert_allclose(tracking.distance, [0.0, 0.5])
    np.testing.assert_allclose(tracking.standard_error, [1.0 / np.sqrt(2), 0.0])  # ‖std‖/√seeds
    np.testing.assert_allclose(tracking.drift_ratio, [1.0, 0.5])
    assert tracking.ode_displacement == 1.0


def sinh_manifold_point(seed: int, n: int = N):
    """Random θ and Gaussian features with labels y = Z sinh θ: a point of the sinh regression's Γ."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, D))
    theta = rng.normal(size=D)
    return jnp.asarray(theta), {"z": jnp.asarray(z), "y": jnp.asarray(z @ np.sinh(theta))}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sinh_regression_hessian_diag_on_manifold_against_dense_hessian(seed):
    theta, batch = sinh_manifold_point(seed)
    dense = np.diag(np.asarray(jax.hessian(sinh_regression_loss)(theta, batch)))
    np.testing.assert_allclose(sinh_regression_hessian_diag_on_manifold(theta, batch["z"]), dense,
                               rtol=1e-12)
    np.testing.assert_allclose(sinh_regression_measure(theta, batch["z"]), np.sum(np.sqrt(dense)),
                               rtol=1e-12)
    # and the library's HVP path (the measure Adam's slow ODE reduces)
    np.testing.assert_allclose(measures.diag_power_trace(sinh_regression_loss, theta, batch, power=0.5),
                               np.sum(np.sqrt(dense)), rtol=1e-10)


def batch_measure(theta, batch):
    """μ(θ, batch) as ``studies.slow_ode`` takes it."""
    return sinh_regression_measure(theta, batch["z"])


def lagrange_residual(theta, batch) -> float:
    """‖∇μ(θ) − Jᵀλ‖ for the least-squares λ, J = ∂(Z sinh θ)/∂θ by autodiff: 0 at a stationary point on Γ."""
    gradient = np.asarray(jax.grad(sinh_regression_measure)(theta, batch["z"]))
    jacobian = np.asarray(jax.jacobian(lambda t: batch["z"] @ jnp.sinh(t))(theta))
    multipliers = np.linalg.lstsq(jacobian.T, gradient, rcond=None)[0]
    return float(np.linalg.norm(gradient - jacobian.T @ multipliers))


@pytest.mark.parametrize("seed", [3, 4])
def test_sinh_regression_minimizer_satisfies_the_lagrange_condition(seed):
    theta, batch = sinh_manifold_point(seed, n=2)
    star = sinh_regression_min_measure_point(batch["z"], batch["y"])
    z = np.asarray(batch["z"])
    np.testing.assert_allclose(z @ np.sinh(np.asarray(star)), batch["y"], atol=1e-12)  # on Γ
    assert lagrange_residual(star, batch) < 1e-10
    assert lagrange_residual(theta, batch) > 1e-3  # a generic point of Γ is not stationary
    # a minimum: μ is larger at other points of Γ, w = w* + (null-space direction), θ = arsinh w
    null = np.linalg.svd(z)[2][z.shape[0]:].T
    others = np.sinh(np.asarray(star))[None] + np.random.default_rng(seed).normal(size=(50, null.shape[1])) @ null.T
    mu = lambda t: float(sinh_regression_measure(jnp.asarray(t), batch["z"]))
    assert min(mu(np.arcsinh(w)) for w in others) > mu(star)
    # the projected gradient of the experiment vanishes there and not at θ
    projected = lambda t: float(slow_ode.projected_measure_gradient(sinh_regression_loss, batch_measure, batch, t))
    assert projected(star) < 1e-10 and projected(theta) > 1e-3


def test_sinh_regression_minimizer_for_one_sample_is_the_closed_form():
    # n = 1: a_j = |z_j| and the Lagrange condition gives |w_j| equal for all j, so w* = sign(z)·y/‖z‖₁
    z = jnp.asarray([[0.5, -2.0, 1.5, 0.25, -1.0]])
    for y in (0.7, -3.0):
        star = sinh_regression_min_measure_point(z, jnp.asarray([y]))
        np.testing.assert_allclose(np.sinh(np.asarray(star)), np.sign(z[0]) * y / np.sum(np.abs(z)), rtol=1e-10)
    with pytest.raises(ValueError, match="z must be"):
        sinh_regression_min_measure_point(z.T, jnp.ones(5))


def test_projected_measure_gradient_is_the_jacobian_projection():
    theta, batch = sinh_manifold_point(7)
    gradient = np.asarray(jax.grad(sinh_regression_measure)(theta, batch["z"]))
    jacobian = np.asarray(jax.jacobian(lambda t: batch["z"] @ jnp.sinh(t))(theta))
    tangent = np.eye(D) - np.linalg.pinv(jacobian) @ jacobian  # I − J⁺J: orthogonal projector onto null J
    got = slow_ode.projected_measure_gradient(sinh_regression_loss, batch_measure, batch, theta)
    np.testing.assert_allclose(got, np.linalg.norm(tangent @ gradient), rtol=1e-8)
    values, norms = slow_ode.measure_along(sinh_regression_loss, batch_measure, batch, theta[None])
    np.testing.assert_allclose([values[0], norms[0]],
                               [sinh_regression_measure(theta, batch["z"]), got], rtol=1e-12)


def test_table1_failing_verdicts_name_the_rows():
    settings = lwl_table1.SETTINGS
    labels = [r.label for r in lwl_table1.rows(settings)]
    gaps = np.zeros((len(labels), 3))
    gaps[1, 2] = 1e-6  # one row off
    closed = np.ones((len(labels), 2))
    record = lwl_table1.Table1Record(gaps, gaps, closed, closed * (1 + gaps[:, :2]), np.zeros(2))
    verdicts = {v.claim_id: v for v in lwl_table1.decide(settings, record).verdicts}
    for claim in ("lwl.table1.updates", "lwl.table1.numpy"):
        assert not verdicts[claim].held and labels[1] in verdicts[claim].note
    assert verdicts["lwl.table1.measures"].held and verdicts["lwl.table1.measures"].note == ""


@pytest.mark.parametrize("seed", [3, 4])
def test_sinh_regression_trace_minimizer_against_dense_hessian_and_lagrange(seed):
    from adabias.problems.sinh_regression import sinh_regression_min_trace_point, sinh_regression_trace

    theta, batch = sinh_manifold_point(seed, n=2)
    dense = np.trace(np.asarray(jax.hessian(sinh_regression_loss)(theta, batch)))
    np.testing.assert_allclose(sinh_regression_trace(theta, batch["z"]), dense, rtol=1e-12)
    star = sinh_regression_min_trace_point(batch["z"], batch["y"])
    z = np.asarray(batch["z"])
    np.testing.assert_allclose(z @ np.sinh(np.asarray(star)), batch["y"], atol=1e-12)  # on Γ
    gradient = np.asarray(jax.grad(sinh_regression_trace)(star, batch["z"]))
    jacobian = np.asarray(jax.jacobian(lambda t: batch["z"] @ jnp.sinh(t))(star))
    multipliers = np.linalg.lstsq(jacobian.T, gradient, rcond=None)[0]
    assert np.linalg.norm(gradient - jacobian.T @ multipliers) < 1e-10  # stationary on Γ
    null = np.linalg.svd(z)[2][z.shape[0]:].T
    others = np.sinh(np.asarray(star))[None] + np.random.default_rng(seed).normal(size=(50, null.shape[1])) @ null.T
    value = lambda t: float(sinh_regression_trace(jnp.asarray(t), batch["z"]))  # noqa: E731
    assert min(value(np.arcsinh(w)) for w in others) > value(star)
    # and it is another point than Adam's minimizer
    assert np.linalg.norm(np.asarray(star) - np.asarray(sinh_regression_min_measure_point(batch["z"], batch["y"]))) > 1e-3


def _sinh_record(sgd_trace, adam_trace, sgd_root, adam_root, tail_sgd, tail_adam):
    from adabias.experiments import lwl_sharpness

    steps = np.arange(4)
    ones = np.ones((8, 4))
    return lwl_sharpness.SinhRecord(
        steps, {"SGD": ones * sgd_trace[:, None], "Adam": ones * adam_trace[:, None]},
        {"SGD": ones * sgd_root[:, None], "Adam": ones * adam_root[:, None]},
        {"SGD": tail_sgd, "Adam": tail_adam}, np.zeros(2), np.array([1.0, 0.0]),
        {"trace_h": {"SGD": 1.0, "Adam": 2.0}, "root_diag_trace": {"SGD": 2.0, "Adam": 1.0}}, np.zeros(2))


def test_sharpness_sinh_decision_follows_its_rule_and_says_why():
    from adabias.experiments import lwl_sharpness

    settings = lwl_sharpness.TIERS.quick
    spread = np.linspace(-0.01, 0.01, 8)
    near = np.zeros((8, 2)) + 0.05, np.tile([1.0, 0.05], (8, 1))
    good = _sinh_record(1.0 + spread, 2.0 + spread, 2.0 + spread, 1.0 + spread, *near)
    decision = lwl_sharpness.decide_sinh(settings, good)
    assert decision.held and decision.reason == ""
    assert list(decision.numbers)[:3] == ["trace_h_gap_over_fluctuation", "root_diag_trace_gap_over_fluctuation",
                                          "max_distance_to_own_minimizer_over_separation"]
    np.testing.assert_allclose(decision.numbers["trace_h_gap_over_fluctuation"], 1.0 / np.std(spread, ddof=1))
    # a gap below 10 × the fluctuation, and Adam far from its minimizer
    noisy = _sinh_record(1.0 + 20 * spread, 2.0 + spread, 2.0 + spread, 1.0 + spread, near[0], np.zeros((8, 2)))
    decision = lwl_sharpness.decide_sinh(settings, noisy)
    assert not decision.held
    assert "tr(H) (SGD lower): mean gap" in decision.reason and "Adam's tail-averaged iterate" in decision.reason
    # SGD lower on Adam's measure: the sign test is contradicted
    wrong = _sinh_record(1.0 + spread, 2.0 + spread, 0.5 + spread, 1.0 + spread, *near)
    assert "contradicted" in lwl_sharpness.decide_sinh(settings, wrong).reason


def test_sharpness_experiment_on_tiny_settings_decides_its_claims():
    from adabias.experiments import lwl_sharpness

    settings = dataclasses.replace(lwl_sharpness.TIERS.quick, num_steps=400, save_every=100, num_seeds=1,
                                   last_records=2, sinh_num_steps=400, sinh_save_every=100)
    result = lwl_sharpness.EXPERIMENT.run(settings, base.Context(progress=False))
    base.check_result(lwl_sharpness.EXPERIMENT, result)
    assert set(result.figures) == {"measures", "sinh"}
    assert set(result.data["retired_own_measure"]["optimizer"]) == {"SGD", "Adam"}
    assert len(result.data["sinh_curves"]["step"]) == 5  # steps 0, 100, …, 400
