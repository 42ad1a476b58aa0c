"""lwl.sparse and lwl.matfac: padding, stacked copies, sweeps against single runs, tiny runs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import adabias as ab  # noqa: E402
from adabias.experiments import REGISTRY, base, lwl_matfac, lwl_sparse  # noqa: E402
from adabias.problems import (  # noqa: E402
    diagonal_net_loss,
    init_diagonal_net,
    label_noise,
    matrix_sensing_loss,
    sparse_regression_data,
)
from adabias.problems.matrix_sensing import matrix_completion_data  # noqa: E402
from adabias.studies import label_noise as label_noise_study  # noqa: E402
from adabias.studies import sample_complexity  # noqa: E402


def _numpy_diagonal_net_loss(u, v, z, y):
    total = 0.0
    for i in range(z.shape[0]):
        prediction = sum(z[i, j] * (u[j] ** 2 - v[j] ** 2) for j in range(z.shape[1]))
        total += 0.5 * (prediction - y[i]) ** 2
    return total / z.shape[0]


def _stacked_problem(num_copies=3, n_max=7, d=6, k=2):
    return sample_complexity.stacked_data(lambda key: sparse_regression_data(key, n_max, d, k),
                                   jax.random.key(3), num_copies)


def test_stacked_padded_loss_is_the_sum_of_the_first_n_sample_losses():
    batches, _ = _stacked_problem()
    n = 4
    padded = sample_complexity.stacked_padded(batches, n)
    params = jax.vmap(lambda key: init_diagonal_net(key, 6, 0.7))(jax.random.split(jax.random.key(0), 3))
    params = {"u": params["u"], "v": params["v"] * 0.5}
    expected = sum(_numpy_diagonal_net_loss(np.asarray(params["u"][c]), np.asarray(params["v"][c]),
                                            np.asarray(batches["z"][c, :n]), np.asarray(batches["y"][c, :n]))
                   for c in range(3))
    value = sample_complexity.stacked_loss(diagonal_net_loss)(params, padded)
    assert float(value) == pytest.approx(expected, rel=1e-12)
    assert np.all(np.asarray(padded["z"][:, n:]) == 0) and np.all(np.asarray(padded["y"][:, n:]) == 0)


def test_padded_rows_with_noisy_labels_leave_each_copys_gradient_unchanged():
    batches, _ = _stacked_problem()
    n = 4
    padded = sample_complexity.stacked_padded(batches, n)
    noisy = dict(padded, y=padded["y"] + 0.5 * jax.random.rademacher(jax.random.key(1), padded["y"].shape,
                                                                       dtype=float))
    params = jax.vmap(lambda key: init_diagonal_net(key, 6, 0.7))(jax.random.split(jax.random.key(0), 3))
    grads = jax.grad(sample_complexity.stacked_loss(diagonal_net_loss))(params, noisy)
    for c in range(3):
        own = jax.grad(diagonal_net_loss)(jax.tree.map(lambda x: x[c], params),
                                          {"z": batches["z"][c, :n], "y": noisy["y"][c, :n]})
        for name in ("u", "v"):
            np.testing.assert_allclose(grads[name][c], own[name], rtol=1e-12, atol=1e-15)


def test_pad_samples_rejects_bad_n():
    batch, _ = sparse_regression_data(jax.random.key(0), 5, 4, 1)
    with pytest.raises(ValueError, match="n must be"):
        sample_complexity.pad_samples(batch, 6)
    with pytest.raises(ValueError, match="num_datasets"):
        sample_complexity.stacked_data(lambda key: (batch, batch["y"]), jax.random.key(0), 0)


def test_sample_complexity_is_the_first_n_at_or_below_the_threshold():
    assert sample_complexity.sample_complexity([10, 20, 30], [3.0, 0.5, 0.1], 0.5) == 20.0
    assert sample_complexity.sample_complexity([10, 20], [3.0, 0.6], 0.5) == float("inf")


SMALL = sample_complexity.LabelNoiseSampleComplexity(
    ns=(5,), delta=0.3, init_scale=0.1, num_seeds=2, num_steps=60, save_every=20, beta1=0.9, beta2=0.95,
    eps=1e-6, sgd_learning_rate=0.05, seed=5)
FACTORIES = label_noise_study.optimizer_factories(beta1=SMALL.beta1, beta2=SMALL.beta2, eps=SMALL.eps)


@pytest.mark.parametrize("name,learning_rate", [("adam", 0.01), ("sgd", 0.05)])
def test_sweep_members_equal_single_runs(name, learning_rate):
    batches, _ = _stacked_problem(num_copies=2, n_max=7, d=6, k=2)
    padded = sample_complexity.stacked_padded(batches, 5)
    make = FACTORIES[name]
    init_copy = lambda key: init_diagonal_net(key, 6, SMALL.init_scale)  # noqa: E731
    result = sample_complexity.train_copies(make, learning_rate, diagonal_net_loss, init_copy, padded, SMALL)
    stacked = sample_complexity.stacked_loss(diagonal_net_loss)
    for seed in (1,):
        # the member equals ab.run of the stacked problem with that seed's key and start
        key = jax.random.fold_in(jax.random.key(SMALL.seed), seed)
        start = jax.vmap(init_copy)(jax.random.split(jax.random.fold_in(key, 1), 2))
        single = ab.run(make(learning_rate), stacked, start, SMALL.num_steps,
                        batches=jax.tree.map(lambda x: x[None], padded), noise=label_noise(SMALL.delta),
                        key=key, save_every=SMALL.save_every)
        member = result.member(seed)
        for leaf in ("u", "v"):
            np.testing.assert_allclose(member.params[leaf], single.params[leaf], rtol=1e-12, atol=1e-14)


def test_matrix_copies_train_independently():
    batches, _ = sample_complexity.stacked_data(lambda key: matrix_completion_data(key, 10, 4, 1),
                                         jax.random.key(2), 2)
    padded = sample_complexity.stacked_padded(batches, 7)
    start = jax.vmap(lambda key: ab.problems.init_matrix_sensing(key, 4, 4, 0.5))(
        jax.random.split(jax.random.key(0), 2))
    optimizer = FACTORIES["adam"](0.01)
    both = ab.run(optimizer, sample_complexity.stacked_loss(matrix_sensing_loss), start, 40,
                  batches=jax.tree.map(lambda x: x[None], padded), save_every=40)
    for c in range(2):
        alone = ab.run(optimizer, matrix_sensing_loss, jax.tree.map(lambda x: x[c], start), 40,
                       batches={"a": batches["a"][c:c + 1, :7], "y": batches["y"][c:c + 1, :7]}, save_every=40)
        for leaf in ("U", "V"):
            np.testing.assert_allclose(both.final_params[leaf][c], alone.final_params[leaf], rtol=1e-11, atol=1e-13)


TINY = {
    "lwl.sparse": dataclasses.replace(lwl_sparse.TIERS.quick, d=12, k=1, ns=(3, 6, 10), num_datasets=2,
                                      num_seeds=2, num_steps=400, save_every=100),
    "lwl.matfac": dataclasses.replace(lwl_matfac.TIERS.quick, d=3, ns=(8,), num_datasets=2, num_seeds=2,
                                      num_steps=200, save_every=100),
}


@pytest.mark.parametrize("experiment_id", ["lwl.sparse",
                                           pytest.param("lwl.matfac", marks=pytest.mark.slow)])
def test_experiment_on_tiny_settings_decides_its_claims_and_returns_figures_and_data(experiment_id):
    exp = REGISTRY[experiment_id]
    settings = TINY[experiment_id]
    result = exp.run(settings, base.Context(progress=False))
    base.check_result(exp, result)
    assert result.figures and all(hasattr(f, "savefig") for f in result.figures.values())
    for table in result.data.values():
        lengths = {len(np.atleast_1d(column)) for column in table.values()}
        assert len(lengths) == 1
    if experiment_id == "lwl.sparse":
        assert list(result.data["final"]["n"]) == list(settings.ns)
    claim = result.claims[0]
    assert isinstance(claim.held, bool) and claim.numbers
    numbers = claim.numbers
    if experiment_id == "lwl.sparse":  # the decision follows the recorded numbers
        ns, threshold = numbers["ns"], numbers["threshold"]
        for name in ("adam", "sgd"):
            below = [n for n, m in zip(ns, numbers[f"mean_final_test_loss_{name}"]) if m <= threshold]
            assert numbers[f"n_star_{name}"] == (min(below) if below else float("inf"))
        assert claim.held == (numbers["n_star_adam"] < numbers["n_star_sgd"])
    else:
        runs = result.data["runs"]
        for claim, depth in zip(result.claims, settings.depths):
            assert claim.id == f"lwl.matfac.adam_worse_depth{depth}"
            rows = runs["depth"] == depth
            differences = runs["adam_tail_test_error"][rows] - runs["sgd_tail_test_error"][rows]
            assert claim.numbers["seeds"] == np.count_nonzero(differences)
            assert claim.numbers["in_claimed_direction"] == np.sum(differences > 0)
            assert claim.held or claim.note


def test_sparse_failing_verdict_says_why():
    settings = dataclasses.replace(lwl_sparse.TIERS.quick, ns=(10, 20), num_datasets=1, num_seeds=2)
    final = np.array([[[3.0, 3.0], [2.0, 2.0]],   # Adam never below τ
                      [[3.0, 3.0], [0.1, 0.1]]])  # SGD at n = 20
    record = lwl_sparse.SparseRecord(np.arange(3), 0.5, final, np.ones((2, 2, 3)), np.zeros((2, 2, 2)),
                                     np.zeros((2, 2), int))
    verdict, = lwl_sparse.decide(settings, record).verdicts
    assert not verdict.held and "n*(Adam) = inf is not below n*(SGD) = 20" in verdict.note


def test_deep_matrix_factorization_product_loss_and_gaussian_noise():
    from adabias.problems.matrix_sensing import (deep_matrix_product, deep_matrix_sensing_loss,
                                                 init_deep_matrix_factorization, matrix_sensing_data)
    from adabias.problems.noise import gaussian_label_noise

    params = init_deep_matrix_factorization(jax.random.key(0), 4, 3, 0.5)
    w = np.asarray(params["W"])
    np.testing.assert_allclose(deep_matrix_product(params), w[2] @ w[1] @ w[0], rtol=1e-13)
    batch, _ = matrix_sensing_data(jax.random.key(1), 5, 4, 1)
    a, y = np.asarray(batch["a"]), np.asarray(batch["y"])
    expected = np.mean([(np.sum(a[i] * (w[2] @ w[1] @ w[0])) - y[i]) ** 2 for i in range(5)]) / 2
    assert float(deep_matrix_sensing_loss(params, batch)) == pytest.approx(expected, rel=1e-12)
    # depth 1 is linear regression on M; scale: the product's entries are of order product_scale/√d
    scales = [float(np.std(deep_matrix_product(init_deep_matrix_factorization(jax.random.key(s), 30, 5, 0.01))))
              for s in range(3)]
    assert 1e-4 < np.mean(scales) < 1e-2
    noisy = gaussian_label_noise(0.5)(jax.random.key(2), {"y": jnp.zeros(20000), "a": 1.0})
    assert noisy["a"] == 1.0 and abs(float(jnp.std(noisy["y"])) - 0.5) < 0.01
    with pytest.raises(ValueError, match="depth"):
        init_deep_matrix_factorization(jax.random.key(0), 4, 0, 0.5)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_label_noise(-1.0)


def test_data_sets_padded_to_different_n_stack_as_copies():
    batches, _ = _stacked_problem()
    both = jax.tree.map(lambda *xs: jnp.concatenate(xs), sample_complexity.stacked_padded(batches, 3),
                        sample_complexity.stacked_padded(batches, 6))
    params = jax.vmap(lambda key: init_diagonal_net(key, 6, 0.7))(jax.random.split(jax.random.key(0), 6))
    params = {"u": params["u"], "v": params["v"] * 0.5}
    expected = sum(_numpy_diagonal_net_loss(np.asarray(params["u"][c]), np.asarray(params["v"][c]),
                                            np.asarray(batches["z"][c % 3, :n]), np.asarray(batches["y"][c % 3, :n]))
                   for c, n in zip(range(6), [3, 3, 3, 6, 6, 6]))
    value = sample_complexity.stacked_loss(diagonal_net_loss)(params, both)
    assert float(value) == pytest.approx(expected, rel=1e-12)
