"""CKS Figures 4–6 (full-batch Adam on image classifiers): regimes, crossings, ranks, memo, runs."""

import dataclasses
from pathlib import Path

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from adabias.experiments import Tiers, cks_fig4, cks_fig5, cks_fig6  # noqa: E402
from adabias.problems.classifiers import make_classifier  # noqa: E402
from adabias.report import run_experiments  # noqa: E402
from adabias.studies import classifiers, regimes, statistics  # noqa: E402
from adabias.studies.classifiers import ClassifierSweepSettings, ParameterSweep  # noqa: E402

CRITERIA = {"initial_fraction": 0.1, "spike_factor": 10.0, "blowup_factor": 10.0}

TINY = ClassifierSweepSettings(
    dataset="digits", model="mlp", widths=(4,), dtype="float64", eps=1e-8, epochs=20,
    num_seeds=1, regime=classifiers.RegimeCriteria(**CRITERIA), train_size=120, test_size=60,
    rules=classifiers.RegimeRules(), norm_epoch=5, loss_threshold=1.0)
TINY_RHO = ParameterSweep("rho", (0.99, 0.999, 0.9999), fixed=0.99, learning_rate=3e-2)
TINY_BETA = ParameterSweep("beta", (0.8, 0.9, 0.99), fixed=0.999, learning_rate=3e-2)


# --- regimes --------------------------------------------------------------------------------


def _decay(n=201):
    return 2.0 * np.exp(-np.arange(n) / 30.0) + 1e-3


def _classify(loss, diverged_at=-1):
    return regimes.classify_regime(loss, diverged_at, **CRITERIA)


def test_smooth_and_small_oscillations_are_stable():
    loss = _decay()
    assert _classify(loss) == "stable"
    wiggle = loss * (1 + 0.5 * (np.arange(loss.size) % 2))  # rises 1.5× above the minimum
    assert _classify(wiggle) == "stable"


def test_a_late_rise_beyond_the_factor_is_a_spike_an_early_one_is_not():
    loss = _decay()
    late = loss.copy()
    late[150] = 11 * np.min(loss[:150])  # > 10 × running minimum, after the first 10 %
    assert _classify(late) == "spikes"
    just_below = loss.copy()
    just_below[150] = 9 * np.min(loss[:150])
    assert _classify(just_below) == "stable"
    early = loss.copy()
    early[10] = 11 * np.min(loss[:10])  # inside the initial phase (epochs < 20)
    assert _classify(early) == "stable"


def test_divergence_by_engine_mark_non_finite_or_blow_up():
    loss = _decay()
    assert _classify(loss, diverged_at=37) == "divergence"
    nan = loss.copy()
    nan[60] = np.nan
    assert _classify(nan) == "divergence"
    blow = loss.copy()
    blow[5] = 10.5 * loss[0]
    assert _classify(blow) == "divergence"


def test_stable_values_and_exclusion_note():
    run_regimes = np.array([["stable", "stable"], ["stable", "spikes"], ["divergence", "stable"]],
                           dtype=object)
    np.testing.assert_array_equal(regimes.stable_values(run_regimes), [True, False, False])
    spec = classifiers.sweep_spec(dataclasses.replace(TINY, epochs=4), TINY_RHO)
    empty = np.zeros((3, 2, 5))
    curves = classifiers.SweepCurves(spec, np.asarray(spec.values), empty, empty, empty, empty,
                                     np.full((3, 2), -1), 0.0, 10)
    note = regimes.exclusion_note(curves, run_regimes)
    assert "ρ=0.999 (seed 1: spikes)" in note and "ρ=0.9999 (seed 0: divergence)" in note
    assert "ρ=0.99 " not in note
    assert regimes.exclusion_note(curves, np.full((3, 2), "stable", dtype=object)) == ""


def test_oscillation_fraction_counts_increases_after_the_initial_phase():
    loss = np.array([5.0, 6.0, 4.0, 3.0, 3.5, 2.0, 2.5, 1.0, 1.2, 0.5, 0.4])
    # after ceil(0.2·10) = 2 epochs: diffs at 2..9 → increases at 3→4, 5→6, 7→8: 3 of 8
    assert regimes.oscillation_fraction(loss, 0.2) == pytest.approx(3 / 8)


# --- thresholds, ranks, hills ---------------------------------------------------------------


def test_first_index_below_matches_a_plain_loop():
    from adabias.studies.curves import first_index_below

    rng = np.random.default_rng(0)
    for _ in range(50):
        loss = np.abs(rng.normal(size=30)).cumsum()[::-1] / 10
        threshold = float(rng.uniform(0, 2))
        expected = -1
        for t, value in enumerate(loss):
            if value < threshold:
                expected = t
                break
        assert first_index_below(loss, threshold) == expected


def test_at_crossing_reads_the_quantity_at_the_first_crossing():
    loss = np.array([[[1.0, 0.5, 0.05, 0.2, 0.01]], [[1.0, 0.9, 0.8, 0.7, 0.6]]])
    quantity = np.arange(10.0).reshape(2, 1, 5)
    epochs, values = regimes.at_crossing(loss, quantity, 0.1)
    np.testing.assert_array_equal(epochs, [[2], [-1]])
    assert values[0, 0] == 2.0 and np.isnan(values[1, 0])


def test_rank_correlation_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = rng.integers(0, 5, size=9).astype(float)
        y = rng.integers(0, 4, size=9).astype(float)
        expected = stats.spearmanr(x, y).statistic
        got = statistics.rank_correlation(x, y)
        if np.isnan(expected):
            assert np.isnan(got)
        else:
            assert got == pytest.approx(expected, abs=1e-12)


def test_monotone_needs_three_points_and_the_sign():
    assert statistics.monotone([1, 2, 3], [3, 2, 1], -1) == (True, -1.0)
    assert not statistics.monotone([1, 2, 3], [3, 2, 1], +1)[0]
    assert not statistics.monotone([1, 2], [2, 1], -1)[0]
    held, r = statistics.monotone([1, 2, 3, 4, 5], [1, 3, 2, 5, 4], +1)  # r = 0.8: the threshold
    assert held and r == pytest.approx(0.8)


def test_hill_height_of_a_piecewise_linear_curve():
    # 10 → 2 (valley) → 6 (hill) → 1: the hill is 3× the valley; without a rise it is 1
    curve = np.concatenate([np.linspace(10, 2, 9), np.linspace(2, 6, 5)[1:], np.linspace(6, 1, 6)[1:]])
    assert statistics.hill_height(curve, 1) == pytest.approx(3.0)
    assert statistics.hill_height(np.linspace(5, 1, 20), 3) == pytest.approx(1.0)
    np.testing.assert_allclose(statistics.hill_heights(np.stack([curve, curve[::-1]])[None], 1),
                               [[3.0, statistics.hill_height(curve[::-1], 1)]])


def test_moving_average_matches_convolution():
    x = np.random.default_rng(2).normal(size=40)
    np.testing.assert_allclose(statistics.moving_average(x, 7), np.convolve(x, np.ones(7) / 7, "valid"))


def test_float64_norm_of_float32_gradients_matches_numpy():
    g = {"a": jnp.asarray([1e-4, -3e-5, 2.0], jnp.float32), "b": jnp.asarray([[5e-6]], jnp.float32)}
    expected = sum(np.sum(np.sqrt(np.asarray(v, np.float64) ** 2 + 1e-8)) for v in g.values())
    got = classifiers._float64_norm(g, 1e-8)
    assert got.dtype == jnp.float64
    assert float(got) == pytest.approx(expected, rel=1e-14)


# --- regime rules ----------------------------------------------------------------------------


def _synthetic_curves(loss, norm, values=(0.9, 0.95, 0.99), fixed=0.5, swept="rho"):
    spec = classifiers.sweep_spec(
        dataclasses.replace(TINY, epochs=loss.shape[-1] - 1, num_seeds=loss.shape[1]),
        ParameterSweep(swept, tuple(values), fixed=fixed, learning_rate=1e-3))
    zeros = np.zeros_like(loss)
    return classifiers.SweepCurves(spec, np.asarray(values), loss, zeros, zeros, norm,
                                   np.full(loss.shape[:2], -1), 0.0, 100)


def test_max_timescale_covers_swept_and_fixed_parameters():
    assert regimes.max_timescale(_synthetic_curves(np.ones((3, 1, 5)), np.ones((3, 1, 5))).spec) \
        == pytest.approx(100.0)
    spec = _synthetic_curves(np.ones((3, 1, 5)), np.ones((3, 1, 5)), values=(0.5, 0.8, 0.9),
                             fixed=0.98, swept="beta").spec
    assert regimes.max_timescale(spec) == pytest.approx(50.0)


def test_rule_checks_match_a_plain_loop():
    rng = np.random.default_rng(3)
    epochs, rules = 2000, classifiers.RegimeRules()
    loss = np.exp(-np.arange(epochs + 1) / rng.uniform(50, 400, size=(3, 2, 1)))
    loss[2, 1] = 1.0  # never crosses
    norm = rng.uniform(0.005, 0.2, size=(3, 2, epochs + 1))
    check = regimes.rule_checks(_synthetic_curves(loss, norm), rules, 500, 0.1)
    floor = 100 * np.sqrt(1e-8)
    tau = 100.0
    assert check.timescale == pytest.approx(tau) and check.timescale_met  # 100 ≤ 0.1·2000
    for i in range(3):
        firsts = []
        for s in range(2):
            below = [t for t in range(epochs + 1) if loss[i, s, t] < 0.1]
            firsts.append(below[0] if below else None)
        if None in firsts:
            assert np.isnan(check.crossing[i]) and not check.crossing_met[i]
        else:
            mean = sum(firsts) / 2
            assert check.crossing[i] == pytest.approx(mean)
            assert check.crossing_met[i] == (2 * tau <= mean <= 0.5 * epochs)
        ratio = (norm[i, 0, 500] + norm[i, 1, 500]) / 2 / floor
        assert check.norm_over_floor[i] == pytest.approx(ratio)
        assert check.norm_met[i] == (ratio >= 5)
    short = regimes.rule_checks(_synthetic_curves(loss[..., :900], norm[..., :900]), rules, 500, 0.1)
    assert not short.timescale_met  # 100 > 0.1·899
    with pytest.raises(ValueError, match="norm_epoch"):
        regimes.rule_checks(_synthetic_curves(loss, norm), rules, epochs + 1, 0.1)


def test_quick_settings_follow_the_stated_rules():
    quick = classifiers.QUICK_SETTINGS
    spec = classifiers.sweep_spec(quick, classifiers.QUICK_RHO_SWEEP)
    assert regimes.max_timescale(spec) <= quick.rules.timescale_fraction * quick.epochs + 1e-9
    assert all(rho >= classifiers.QUICK_RHO_SWEEP.fixed for rho in spec.values)  # ρ ≥ β
    assert quick.norm_epoch == quick.epochs // 4
    assert quick.num_seeds >= statistics.seeds_needed(0.69, 0.1)  # the stated pilot numbers
    assert cks_fig4.TIERS.quick.classifier == quick
    for experiment in (cks_fig5, cks_fig6):  # their paper claims are not tested at quick
        assert experiment.TIERS.quick.classifier is None
        assert experiment.TIERS.medium.classifier == classifiers.MEDIUM_SETTINGS
    # the theory claims: small h·ρ/(1−ρ), h·β/(1−β), the sweeps share a point
    flow = classifiers.FlowComparisonSettings()
    for value in (*flow.beta_values, *flow.rho_values):
        assert flow.learning_rate * value / (1 - value) < 2e-3
    assert (flow.beta_fixed, flow.rho_fixed) in flow.members()
    assert len(flow.members()) == len(flow.beta_values) + len(flow.rho_values) - 1


def test_medium_tier_follows_the_paper_protocol():
    medium = classifiers.MEDIUM_SETTINGS
    assert (medium.dataset, medium.eps, medium.epochs, medium.norm_epoch) == ("cifar10", 1e-8,
                                                                              3600, 900)
    assert medium.num_seeds >= 7 and medium.loss_threshold == 0.1
    assert (classifiers.MEDIUM_RHO_SWEEP.fixed, classifiers.MEDIUM_RHO_SWEEP.learning_rate) == (
        0.99, 7.5e-5)  # Figure 4's caption
    assert (classifiers.MEDIUM_BETA_SWEEP.fixed, classifiers.MEDIUM_BETA_SWEEP.learning_rate) == (
        0.999, 1e-4)  # Figure 5's and Figure 6 (left)
    assert (classifiers.MEDIUM_RHO_SWEEP_FIG6.fixed,
            classifiers.MEDIUM_RHO_SWEEP_FIG6.learning_rate) == (0.97, 1e-4)  # Figure 6 (right)
    assert cks_fig6.MEDIUM.beta_sweep == cks_fig5.MEDIUM.sweep  # reused from the memo


# --- data --------------------------------------------------------------------------------


def test_digits_standardized_with_train_statistics():
    data = classifiers.prepare_data("digits", train_size=200, test_size=50)
    assert data.x_train.shape == (200, 8, 8, 1) and data.x_test.shape == (50, 8, 8, 1)
    std = data.x_train.std(axis=0)
    varying = std > 0
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(std[varying], 1, rtol=1e-12)


def test_make_classifier_mlp_and_cnn_shapes():
    x = jnp.zeros((2, 8, 8, 3))
    for model, widths in (("mlp", (5,)), ("cnn", (4, 6))):
        init, apply = make_classifier(model, widths, (8, 8, 3), 10, jnp.float64)
        assert apply(init(jax.random.key(0)), x).shape == (2, 10)
    with pytest.raises(ValueError, match="model"):
        make_classifier("resnet", (4,), (8, 8, 3), 10, jnp.float64)


def test_missing_cifar_fails_with_a_clear_message(tmp_path):
    with pytest.raises(RuntimeError, match="not available offline"):
        classifiers.prepare_data("cifar10", data_root=str(tmp_path), download=False)
    with pytest.raises(ValueError, match="dataset"):
        classifiers.prepare_data("mnist")


# --- sweeps, memo, experiments ----------------------------------------------------------------


def test_cifar_subset_standardized_per_channel():
    root = Path("/work/shared/data/cifar-10-subset")
    if not (root / "cifar-10-batches-bin" / "test_batch.bin").is_file():
        pytest.skip("no CIFAR-10 copy on this machine")
    data = classifiers.prepare_data("cifar10", data_root=str(root), download=False,
                                    train_size=300, test_size=40)
    assert data.x_train.shape == (300, 32, 32, 3) and data.x_test.shape == (40, 32, 32, 3)
    np.testing.assert_allclose(data.x_train.mean(axis=(0, 1, 2)), 0, atol=1e-10)
    np.testing.assert_allclose(data.x_train.std(axis=(0, 1, 2)), 1, rtol=1e-10)


def test_float32_network_trains_in_a_sweep():
    spec = classifiers.sweep_spec(dataclasses.replace(TINY, epochs=3, dtype="float32"), TINY_BETA)
    curves = classifiers._train(spec, False)
    assert np.all(np.isfinite(curves.loss)) and curves.loss[:, :, -1].max() < curves.loss[:, :, 0].min()


TINY_FLOW = classifiers.FlowComparisonSettings(
    train_size=60, widths=(3,), num_steps=40, num_times=4, learning_rate=5e-5,
    beta_values=(0.8, 0.9), rho_fixed=0.95, rho_values=(0.93, 0.95), beta_fixed=0.9,
    rtol=1e-8, atol=1e-10)


def test_figures_4_5_6_run_and_fig6_reuses_their_sweeps_from_the_memo(monkeypatch, tmp_path):
    classifiers.clear_memo()
    classifiers.clear_flow_memo()
    calls, flow_calls = [], []
    original, original_flow = classifiers._train, classifiers._flow_comparison
    monkeypatch.setattr(classifiers, "_train",
                        lambda spec, progress: calls.append(spec) or original(spec, progress))
    monkeypatch.setattr(classifiers, "_flow_comparison",
                        lambda s: flow_calls.append(s) or original_flow(s))
    fig4 = cks_fig4.Fig4Settings(flow=TINY_FLOW, classifier=TINY, sweep=TINY_RHO)
    fig5 = cks_fig5.Fig5Settings(flow=TINY_FLOW, classifier=TINY, sweep=TINY_BETA)
    fig6 = cks_fig6.Fig6Settings(flow=TINY_FLOW, classifier=dataclasses.replace(TINY, norm_epoch=6),
                                 beta_sweep=TINY_BETA, rho_sweep=TINY_RHO, hill_window=3,
                                 most_fraction=0.5)  # norm_epoch does not change the training
    experiments = [
        dataclasses.replace(e.EXPERIMENT, tiers=Tiers(quick=s, medium=s, full=s))
        for e, s in ((cks_fig4, fig4), (cks_fig5, fig5), (cks_fig6, fig6))
    ]
    records = run_experiments(experiments, tmp_path, force=True, progress=False)
    assert [r.status for r in records] == ["ran"] * 3, [r.error for r in records]
    assert len(calls) == 2 and len(flow_calls) == 1  # fig6 trained nothing, one comparison
    curves = classifiers.classifier_sweep(classifiers.sweep_spec(fig4.classifier, TINY_RHO))
    assert len(calls) == 2
    assert classifiers.classifier_sweep(classifiers.sweep_spec(fig6.classifier, TINY_RHO)) is curves
    assert curves.loss.shape == (3, 1, TINY.epochs + 1) and curves.norm.shape == curves.loss.shape
    # same seed, same start: the epoch-0 records agree across the swept values
    np.testing.assert_allclose(curves.norm[:, 0, 0], curves.norm[0, 0, 0])
    assert np.all(curves.norm >= curves.norm_floor)
    # ‖g‖₁,ε ≥ ‖g‖₁ ≥ ‖g‖₂ and ‖g‖₁,ε ≤ ‖g‖₁ + p·√ε
    assert np.all(curves.norm >= curves.norm_l1) and np.all(curves.norm_l1 >= curves.norm_l2)
    assert np.all(curves.norm <= curves.norm_l1 + curves.norm_floor * (1 + 1e-12))
    decided = {c["id"]: c for r in records for c in r.claims}
    assert set(decided) == set(cks_fig4.EXPERIMENT.claims) | set(cks_fig5.EXPERIMENT.claims) | set(
        cks_fig6.EXPERIMENT.claims)
    for claim in decided.values():  # one seed: no paired test can decide
        if claim["kind"] == "paper":
            assert not claim["held"] and claim["note"].startswith("undecided")
    for name in ("cks.fig4.rho_sweep", "cks.fig5.beta_sweep", "cks.fig6.norm_curves",
                 "cks.fig4.flow_order", "cks.fig5.flow_order", "cks.fig6.flow_curves"):
        assert (tmp_path / "figures" / f"{name}.png").is_file()
    table = (tmp_path / "data" / "cks.fig6.beta_norm_curves.csv").read_text().splitlines()
    assert len(table) == TINY.epochs + 2  # header + epochs 0…T


def test_quick_tier_leaves_the_paper_claims_of_figures_5_and_6_undecided(tmp_path):
    classifiers.clear_flow_memo()
    settings = [cks_fig5.Fig5Settings(flow=TINY_FLOW), cks_fig6.Fig6Settings(flow=TINY_FLOW)]
    experiments = [dataclasses.replace(e.EXPERIMENT, tiers=Tiers(quick=s, medium=s, full=s))
                   for e, s in zip((cks_fig5, cks_fig6), settings)]
    records = run_experiments(experiments, tmp_path, force=True, progress=False)
    assert [r.status for r in records] == ["ran"] * 2, [r.error for r in records]
    for claim in (c for r in records for c in r.claims):
        if claim["kind"] == "paper":
            assert not claim["held"] and "not tested at this tier" in claim["note"]
        else:
            assert claim["kind"] == "theory" and claim["numbers"]


# --- flow comparison, paired tests, norms, data -------------------------------------------------


def _synthetic_comparison(adam, flow, settings=None):
    settings = settings or classifiers.FlowComparisonSettings(
        beta_values=(0.8, 0.9), rho_fixed=0.95, rho_values=(0.93, 0.95), beta_fixed=0.9,
        num_steps=20, num_times=2)
    members = settings.members()
    return classifiers.FlowComparison(
        settings, np.array([b for b, _ in members]), np.array([r for _, r in members]),
        np.array([0, 10, 20]), np.asarray(adam, float), np.asarray(flow, float),
        np.zeros((len(members), 3)), np.zeros(len(members)), 0.0, 10)


def test_order_check_matches_a_plain_computation():
    # members: (0.8, 0.95), (0.9, 0.95), (0.9, 0.93); β sweep = rows 0, 1; ρ sweep = rows 2, 1
    flow = [[5.0, 4.0, 3.0], [5.0, 3.7, 2.9], [5.0, 3.5, 2.95]]
    adam = [[5.0, 3.95, 3.01], [5.0, 3.75, 2.91], [5.0, 3.6, 2.96]]
    comparison = _synthetic_comparison(adam, flow)
    beta = classifiers.order_check(comparison, "beta")
    # t1: error max(0.05, 0.05) = 0.05 ≤ 0.3/3: decided; 3.95 > 3.75 as 4.0 > 3.7
    np.testing.assert_allclose(beta.tracking_error, [0.0, 0.05, 0.01], atol=1e-12)
    np.testing.assert_allclose(beta.smallest_gap, [0.0, 0.3, 0.1], atol=1e-12)
    np.testing.assert_array_equal(beta.decided, [False, True, True])  # t = 0 never decides
    np.testing.assert_array_equal(beta.agree[1:], [True, True])
    rho = classifiers.order_check(comparison, "rho")
    # ρ = 0.93 (row 2) then 0.95 (row 1): t1 flow 3.5 < 3.7, Adam 3.6 < 3.75; t2 flow 2.95 > 2.9
    np.testing.assert_allclose(rho.tracking_error[1:], [0.1, 0.01], atol=1e-12)
    np.testing.assert_array_equal(rho.decided[1:], [False, True])  # 0.1 > 0.2/3
    np.testing.assert_array_equal(rho.agree[1:], [True, True])
    np.testing.assert_allclose(rho.flow_r[1:], [1.0, -1.0])
    held, numbers, note = classifiers.flow_order_decision(comparison, "rho")
    assert held and note == "" and numbers["smallest_gap"] == pytest.approx(0.05)
    # with two values a decided order cannot differ (Adam within a third of the gap); a swap
    # beyond the error bound is undecided
    swapped = _synthetic_comparison([[5, 4, 3], [5, 3.7, 2.9], [5, 3.5, 2.899]], flow)
    held, _, note = classifiers.flow_order_decision(swapped, "rho")
    assert not held and note.startswith("undecided")
    far = _synthetic_comparison([[5, 4, 3], [5, 3.7, 2.9], [5, 3.5, 3.2]], flow)
    held, _, note = classifiers.flow_order_decision(far, "rho")
    assert not held and note.startswith("undecided")


def test_flow_comparison_settings_are_checked():
    with pytest.raises(ValueError, match="multiple"):
        classifiers.FlowComparisonSettings(num_steps=10, num_times=3)
    with pytest.raises(ValueError, match="increasing"):
        classifiers.FlowComparisonSettings(beta_values=(0.9, 0.8))


def test_flow_comparison_starts_together_and_tracks_to_second_order():
    with pytest.raises(ValueError, match="two values"):  # a sweep needs two values
        dataclasses.replace(TINY_FLOW, rho_values=(0.95,))
    comparisons = [classifiers._flow_comparison(dataclasses.replace(
        TINY_FLOW, learning_rate=h, num_steps=n, num_times=1, rtol=1e-10, atol=1e-12))
        for h, n in ((1e-4, 40), (5e-5, 80))]
    for c in comparisons:
        np.testing.assert_allclose(c.adam_norm[:, 0], c.flow_norm[:, 0], rtol=1e-14)
    errors = [np.max(np.abs(c.adam_norm[:, -1] - c.flow_norm[:, -1])) for c in comparisons]
    # at a fixed t = 4e-3 the error falls faster than O(h) (measured ratio 3.1; 4 in the limit)
    assert errors[1] < errors[0] / 2.5


def test_extremes_test_pairs_seeds_of_the_smallest_and_largest_value():
    rng = np.random.default_rng(4)
    loss = np.ones((3, 8, 5))
    curves = _synthetic_curves(loss, loss)
    per_run = rng.normal(size=(3, 8))
    per_run[2] = per_run[0] + 1 + 0.1 * rng.normal(size=8)
    stable = np.full((3, 8), "stable", dtype=object)
    result = regimes.extremes_test(curves, stable, per_run, +1)
    expected = statistics.paired_test(per_run[0], per_run[2], +1)
    assert result.held and result.test == expected
    numbers = result.numbers("q")
    assert list(numbers)[:3] == ["mean_difference", "min_detectable_effect", "p_value"]
    assert not regimes.extremes_test(curves, stable, per_run, -1).held
    spiky = stable.copy()
    spiky[2, 3] = "spikes"
    bad = regimes.extremes_test(curves, spiky, per_run, +1)
    assert bad.test is None and bad.note().startswith("undecided") and "0.99" in bad.note()
    missing = per_run.copy()
    missing[0, 1] = np.nan
    assert regimes.extremes_test(curves, stable, missing, +1).note().startswith("undecided")


def test_gradient_norms_match_numpy():
    g = {"a": jnp.asarray([1e-4, -3e-5, 2.0], jnp.float32), "b": jnp.asarray([[-5e-6, 3.0]])}
    flat = np.concatenate([np.asarray(v, np.float64).ravel() for v in g.values()])
    got = np.asarray(classifiers.gradient_norms(g, 1e-8))
    np.testing.assert_allclose(got, [np.sum(np.sqrt(flat ** 2 + 1e-8)), np.sum(np.abs(flat)),
                                     np.linalg.norm(flat)], rtol=1e-12)


def test_downsample_averages_blocks():
    x = np.random.default_rng(5).normal(size=(2, 8, 8, 3))
    out = classifiers.downsample_images(x, 4)
    assert out.shape == (2, 2, 2, 3)
    assert out[1, 1, 0, 2] == pytest.approx(x[1, 4:8, 0:4, 2].mean())
    with pytest.raises(ValueError, match="divide"):
        classifiers.downsample_images(x, 3)
    with pytest.raises(ValueError, match="positive"):
        classifiers.downsample_images(x, 0)


def test_tanh_mlp_and_bad_activation():
    init, apply = make_classifier("mlp", (5,), (8, 8, 1), 10, jnp.float64, activation="tanh")
    params = init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 8, 8, 1), jnp.float64)
    layers = params["layers"]
    expected = np.tanh(np.asarray(x).reshape(3, -1) @ layers[0]["w"] + layers[0]["b"]) @ \
        layers[1]["w"] + layers[1]["b"]
    np.testing.assert_allclose(apply(params, x), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="activation"):
        make_classifier("mlp", (5,), (8, 8, 1), 10, jnp.float64, activation="gelu")
    with pytest.raises(ValueError, match="activation"):
        make_classifier("cnn", (5,), (8, 8, 1), 10, jnp.float64, activation="tanh")
