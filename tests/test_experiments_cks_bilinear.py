"""CKS Figures 2 and 3 (bilinear model): end-point measure, sweeps, flow overlay, experiments."""

import dataclasses

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import adabias as ab  # noqa: E402
from adabias import flows  # noqa: E402
from adabias.experiments import Tiers, cks_fig2, cks_fig3  # noqa: E402
from adabias.problems import BILINEAR_START, bilinear_loss  # noqa: E402
from adabias.problems.bilinear import bilinear_one_norm_per_residual  # noqa: E402
from adabias.report import run_experiments  # noqa: E402
from adabias.studies import bilinear  # noqa: E402
from adabias.studies.bilinear import SweepSpec  # noqa: E402

FIXED = {"learning_rate": 1e-2, "beta2": 0.9, "eps": 1e-8}
STEPS = 400


@pytest.fixture(scope="module")
def measured():
    """A two-member β sweep, large h and few steps (the approach ends well before step 400),
    and its flow overlay."""
    sweep = bilinear.run_sweep(SweepSpec("beta1", (0.8, 0.95), FIXED), STEPS)
    (overlay,) = bilinear.add_flows([sweep], flow_points=200)
    return sweep, overlay


@pytest.fixture
def sweep(measured):
    return measured[0]


@pytest.fixture
def overlay(measured):
    return measured[1]


def test_approach_end_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    path = np.cumsum(rng.normal(scale=0.05, size=(300, 2)), axis=0) + np.array([0.6, 1.3])
    h, beta1, beta2 = 3e-3, 0.9, 0.95
    expected = len(path) - 1
    for n, (a, b) in enumerate(path):
        if abs(1.5 - 2 * a * b) <= h * 2 * (abs(a) + abs(b)) / (1 - max(beta1, beta2)):
            expected = n
            break
    assert bilinear.approach_end(path, h, beta1, beta2) == expected


def test_sweep_member_equals_a_single_run(sweep):
    single = ab.run(ab.optim.adam(FIXED["learning_rate"], 0.95, FIXED["beta2"], FIXED["eps"]),
                    bilinear_loss, jnp.asarray(BILINEAR_START), STEPS)
    np.testing.assert_allclose(sweep.params[1], np.asarray(single.params), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sweep.loss[1], np.asarray(single.loss), rtol=1e-10, atol=1e-20)
    window = bilinear_one_norm_per_residual(np.asarray(single.params)[sweep.window_start:])
    assert sweep.s_mean[1] == pytest.approx(window.mean(), rel=1e-12)
    assert sweep.s_jitter[1] == pytest.approx(window.max() - window.min(), abs=1e-12)


def test_flow_overlay_matches_an_independent_solve(sweep, overlay):
    i = 1
    h, beta1 = sweep.learning_rate[i], sweep.beta1[i]
    duration = sweep.approach_steps[i] * h
    picks = np.array([0, 50, 120, 200])
    field = flows.adam_full_batch(bilinear_loss, h, beta1, FIXED["beta2"], FIXED["eps"], order=1)
    independent = flows.solve(field, jnp.asarray(BILINEAR_START), duration * picks / 200)
    np.testing.assert_allclose(overlay.flow[i, picks], np.asarray(independent), rtol=0, atol=1e-8)
    assert sweep.approach_steps[i] < STEPS


def test_order_one_field_with_zero_step_is_the_order_zero_field():
    # flow0 in add_flows is (2.2) with h = 0 in the bias (traced, so not rejected)
    points = jax.random.uniform(jax.random.key(5), (6, 2), minval=0.2, maxval=3.0)

    def velocity(h, theta):
        return flows.adam_full_batch(bilinear_loss, h, 0.95, 0.9, 1e-6, order=1)(0.0, theta, None)

    zero = jax.vmap(velocity)(jnp.zeros(len(points)), points)
    order0_field = flows.adam_full_batch(bilinear_loss, 1e-2, 0.95, 0.9, 1e-6, order=0)
    order0 = jax.vmap(lambda p: order0_field(0.0, p, None))(points)
    np.testing.assert_allclose(np.asarray(zero), np.asarray(order0), rtol=1e-14, atol=0)


def test_flow_error_is_the_sup_over_every_step_of_the_approach(sweep, overlay):
    i = 0
    n = sweep.approach_steps[i]
    times = np.linspace(0, n, overlay.flow_points + 1)
    worst = 0.0
    for step in range(n + 1):  # plain loop, linear interpolation by hand
        k = min(int(np.searchsorted(times, step, side="right")) - 1, overlay.flow_points - 1)
        w = (step - times[k]) / (times[k + 1] - times[k])
        point = (1 - w) * overlay.flow[i, k] + w * overlay.flow[i, k + 1]
        worst = max(worst, np.max(np.abs(point - sweep.params[i, step])))
    assert overlay.flow_error[i] == pytest.approx(worst, rel=1e-12)


def test_monotone_decision(sweep):
    def decide(s_mean, jitter, loss, direction):
        fake = sweep._replace(s_mean=np.asarray(s_mean), s_jitter=np.asarray(jitter),
                              window_max_loss=np.asarray(loss))
        return bilinear.monotone_decision(fake, direction=direction, loss_tolerance=1e-6)

    held, numbers, note = decide([1.9, 1.8], [0.01, 0.01], [1e-9, 1e-9], -1)
    assert held and numbers["monotone"] and numbers["steps_exceed_jitter"] and note == ""
    assert not decide([1.9, 1.8], [0.01, 0.01], [1e-9, 1e-9], +1).held
    assert not decide([1.9, 1.8], [0.2, 0.01], [1e-9, 1e-9], -1).held  # shift within the jitter
    assert not decide([1.9, 1.8], [0.01, 0.01], [1e-9, 1e-3], -1).held  # not converged
    assert "converged" in decide([1.9, 1.8], [0.01, 0.01], [1e-9, 1e-3], -1).note
    with pytest.raises(ValueError, match="direction"):
        bilinear.monotone_decision(sweep, direction=0, loss_tolerance=1e-6)


def test_bad_arguments_are_rejected(sweep):
    with pytest.raises(ValueError, match="name"):
        bilinear.run_sweep(SweepSpec("eps", (1e-8,), FIXED), 10)
    with pytest.raises(ValueError, match="fixed"):
        bilinear.run_sweep(SweepSpec("beta1", (0.9,), {"learning_rate": 1e-2}), 10)
    with pytest.raises(ValueError, match="window_fraction"):
        bilinear.run_sweep(SweepSpec("beta1", (0.9,), FIXED), 10, window_fraction=0.0)
    with pytest.raises(ValueError, match="flow_points"):
        bilinear.add_flows([sweep], flow_points=1)


def test_figures_2_and_3_run_and_write_their_files(tmp_path):
    tiny = {"num_steps": 400, "flow_points": 200, "landscape_points": 31, "path_every": 50}
    fig2 = dataclasses.replace(cks_fig2.TIERS.quick, **tiny, learning_rate=1e-2,
                               beta_sweep_beta1=(0.8, 0.95), beta_sweep_beta2=0.9,
                               rho_sweep_beta1=0.9, rho_sweep_beta2=(0.8, 0.95))
    fig3 = dataclasses.replace(cks_fig3.TIERS.quick, **tiny, learning_rates=(5e-3, 1e-2),
                               beta_gt_rho_beta1=0.95, beta_gt_rho_beta2=0.8,
                               rho_gt_beta_beta1=0.8, rho_gt_beta_beta2=0.95)
    experiments = [dataclasses.replace(cks_fig2.EXPERIMENT, tiers=Tiers(fig2, fig2, fig2)),
                   dataclasses.replace(cks_fig3.EXPERIMENT, tiers=Tiers(fig3, fig3, fig3))]
    records = run_experiments(experiments, tmp_path, force=True, progress=False)
    assert [r.status for r in records] == ["ran", "ran"], [r.error for r in records]
    for record, exp in zip(records, experiments):
        assert sorted(c["id"] for c in record.claims) == sorted(exp.claims)
        assert (tmp_path / "figures" / f"{exp.id}.trajectories.png").is_file()
    table = (tmp_path / "data" / "cks.fig3.beta_gt_rho.csv").read_text().splitlines()
    assert len(table) == 1 + 2  # header + one row per learning rate
    paths = (tmp_path / "data" / "cks.fig2.rho_paths.csv").read_text().splitlines()
    assert len(paths) == 1 + 2 * (400 // 50 + 1)
