"""Tests for adabias.problems: landscapes, models, label noise, digits.

The CIFAR loader is tested in test_data_integrity.py.
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import adabias.problems as P  # noqa: E402
from adabias.problems import bilinear  # noqa: E402
from adabias.problems import diagonal_net as DN  # noqa: E402
from adabias.problems import matrix_sensing as MS  # noqa: E402


# ---------------------------------------------------------------- bilinear
def test_bilinear_gradient_matches_formula():
    theta = jnp.array([2.8, 3.5])
    x, y = 2.0, 1.5
    g = jax.grad(P.bilinear_loss)(theta, x, y)
    r = y - theta[0] * theta[1] * x
    expected = -r * x * jnp.array([theta[1], theta[0]])
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    assert float(P.bilinear_loss(jnp.asarray(P.BILINEAR_START))) == pytest.approx(
        0.5 * (1.5 - 2.8 * 3.5 * 2) ** 2
    )


def test_bilinear_min_point_and_landscape():
    c = P.bilinear_min_one_norm_point()
    np.testing.assert_allclose(c, [np.sqrt(0.75)] * 2)
    assert float(P.bilinear_loss(c)) == pytest.approx(0.0, abs=1e-28)
    g1, g2 = jnp.linspace(0, 4, 5), jnp.linspace(0, 3, 3)
    z = P.bilinear_landscape(g1, g2)
    assert z.shape == (3, 5)
    assert float(z[2, 1]) == pytest.approx(float(P.bilinear_loss(jnp.array([g1[1], g2[2]]))))
    t1 = jnp.linspace(0.5, 3.0, 6)
    np.testing.assert_allclose(P.bilinear_loss(jnp.stack([t1, bilinear.bilinear_minimum_set(t1)], -1)),
                               0.0, atol=1e-28)


def test_bilinear_one_norm_per_residual_is_gradient_one_norm_over_x_times_residual():
    points = jax.random.normal(jax.random.key(3), (7, 2)) * 2.0
    grads = jax.vmap(jax.grad(P.bilinear_loss))(points)
    residual = bilinear.bilinear_residual(points)
    np.testing.assert_allclose(P.bilinear_loss(points), 0.5 * residual**2, rtol=1e-14)
    expected = np.abs(np.asarray(grads)).sum(-1) / (P.BILINEAR_X * np.abs(residual))
    np.testing.assert_allclose(bilinear.bilinear_one_norm_per_residual(points), expected, rtol=1e-12)
    cross = P.bilinear_min_one_norm_point()
    assert float(bilinear.bilinear_one_norm_per_residual(cross)) == pytest.approx(2 * np.sqrt(0.75))


def test_bilinear_sign_flow_limit_lies_on_the_minima_and_keeps_the_start_difference():
    theta = np.asarray(bilinear.bilinear_sign_flow_limit())
    assert theta[0] * theta[1] == pytest.approx(0.75, rel=1e-14)
    assert theta[1] - theta[0] == pytest.approx(P.BILINEAR_START[1] - P.BILINEAR_START[0], rel=1e-14)
    assert np.all(theta > 0)


# ---------------------------------------------------------------- diagonal net
def test_diagonal_net_loss_vs_numpy_loop():
    batch, w_star = P.sparse_regression_data(jax.random.key(0), 7, 6, 2, noise_std=0.1)
    params = {"u": jnp.linspace(0.1, 0.6, 6), "v": jnp.linspace(-0.3, 0.2, 6)}
    z, y = np.asarray(batch["z"]), np.asarray(batch["y"])
    u, v = np.asarray(params["u"]), np.asarray(params["v"])
    total = 0.0
    for i in range(z.shape[0]):
        f = sum(z[i, j] * (u[j] ** 2 - v[j] ** 2) for j in range(z.shape[1]))
        total += 0.5 * (f - y[i]) ** 2
    assert float(P.diagonal_net_loss(params, batch)) == pytest.approx(total / z.shape[0])
    np.testing.assert_array_equal(w_star, [1, 1, 0, 0, 0, 0])
    assert set(np.unique(z)) == {-1.0, 1.0}
    w = u**2 - v**2
    assert float(P.diagonal_net_test_loss(params, w_star)) == pytest.approx(
        np.sum((w - np.asarray(w_star)) ** 2)
    )


def test_sparse_regression_options():
    batch, w_star = P.sparse_regression_data(
        jax.random.key(1), 5, 10, 3, features="gaussian", random_support=True
    )
    assert batch["z"].shape == (5, 10) and batch["y"].shape == (5,)
    assert float(jnp.sum(w_star)) == 3.0
    np.testing.assert_allclose(batch["y"], batch["z"] @ w_star)
    with pytest.raises(ValueError, match="features"):
        P.sparse_regression_data(jax.random.key(1), 5, 10, 3, features="uniform")


def test_init_diagonal_net_is_balanced():
    params = P.init_diagonal_net(jax.random.key(2), 8)
    np.testing.assert_array_equal(params["u"], params["v"])
    np.testing.assert_array_equal(P.diagonal_net_weights(params), 0.0)
    assert params["u"].dtype == jnp.float64


@pytest.mark.parametrize("features", ["rademacher", "gaussian"])
def test_hessian_diag_on_manifold_matches_jax_hessian(features):
    d, n = 5, 3
    batch, _ = P.sparse_regression_data(jax.random.key(3), n, d, 2, features=features)
    params = {"u": jnp.array([0.5, -1.2, 0.3, 0.9, 0.1]), "v": jnp.array([0.2, 0.4, -0.7, 0.0, 1.1])}
    batch = {"z": batch["z"], "y": P.diagonal_net_predict(params, batch["z"])}  # zero residual
    assert float(P.diagonal_net_loss(params, batch)) == pytest.approx(0.0, abs=1e-28)
    flat = jnp.concatenate([params["u"], params["v"]])

    def loss_flat(x):
        return P.diagonal_net_loss({"u": x[:d], "v": x[d:]}, batch)

    h = jax.hessian(loss_flat)(flat)
    closed = P.diagonal_net_hessian_diag_on_manifold(params, batch["z"])
    np.testing.assert_allclose(jnp.diag(h), jnp.concatenate([closed["u"], closed["v"]]), rtol=1e-10, atol=1e-12)


def test_manifold_points_have_zero_residual_and_the_drawn_signs():
    rng = np.random.default_rng(5)
    z = jnp.asarray(rng.normal(size=(3, 5)))
    y = z @ jnp.asarray(rng.normal(size=5) ** 2 - rng.normal(size=5) ** 2)
    points = DN.diagonal_net_manifold_points(jax.random.key(0), z, y, 6, 0.7)
    residuals = jax.vmap(lambda p: z @ (p["u"] ** 2 - p["v"] ** 2) - y)(points)
    np.testing.assert_allclose(residuals, 0.0, atol=1e-12)
    assert np.all(np.isfinite(points["u"])) and points["u"].shape == (6, 5)
    draws = 0.7 * jax.random.normal(jax.random.key(0), (6, 2, 5))
    np.testing.assert_array_equal(np.sign(points["u"]), np.sign(draws[:, 0]))  # only magnitudes change
    np.testing.assert_array_equal(np.sign(points["v"]), np.sign(draws[:, 1]))


def test_effective_support_and_balanced_point():
    np.testing.assert_allclose(DN.effective_support(jnp.array([0.0, 3.0, 0.0])), 1.0)
    np.testing.assert_allclose(DN.effective_support(jnp.array([2.0, -2.0, 0.0, 2.0])), 3.0)
    np.testing.assert_allclose(DN.effective_support(jnp.array([1.0, 0.5, 0.0])), 1.5**2 / 1.25)
    w = jnp.array([1.0, -0.25, 0.0])
    point = DN.diagonal_net_balanced_point(w)
    np.testing.assert_array_equal(point["u"], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(point["v"], [0.0, 0.5, 0.0])
    np.testing.assert_array_equal(P.diagonal_net_weights(point), w)


# ---------------------------------------------------------------- label noise
def test_label_noise_values_and_keys():
    y = jnp.arange(64.0)
    batch = {"z": jnp.ones((64, 2)), "y": y}
    noise = P.label_noise(0.5)
    out = noise(jax.random.key(0), batch)
    diff = np.asarray(out["y"] - y)
    assert set(np.unique(diff)) == {-0.5, 0.5}
    assert out["z"] is batch["z"]
    np.testing.assert_array_equal(batch["y"], y)  # input not modified
    out2 = noise(jax.random.key(1), batch)
    assert not np.array_equal(out["y"], out2["y"])
    jitted = jax.jit(noise)(jax.random.key(0), batch)
    np.testing.assert_array_equal(jitted["y"], out["y"])
    assert out["y"].dtype == jnp.float64
    with pytest.raises(ValueError):
        P.label_noise(-1.0)


# ---------------------------------------------------------------- matrix sensing
def test_matrix_sensing_loss_vs_numpy():
    batch, m_star = P.matrix_sensing_data(jax.random.key(4), 9, 4, 2)
    assert batch["a"].shape == (9, 4, 4) and m_star.shape == (4, 4)
    assert np.linalg.matrix_rank(np.asarray(m_star)) == 2
    params = P.init_matrix_sensing(jax.random.key(5), 4, 3, scale=1.0)
    a, y = np.asarray(batch["a"]), np.asarray(batch["y"])
    m = np.asarray(params["U"]) @ np.asarray(params["V"]).T
    expected = np.mean([0.5 * (np.sum(a[i] * m) - y[i]) ** 2 for i in range(9)])
    assert float(P.matrix_sensing_loss(params, batch)) == pytest.approx(expected, rel=1e-12)
    ms = np.asarray(m_star)
    assert float(P.matrix_sensing_test_error(params, m_star)) == pytest.approx(
        np.sum((m - ms) ** 2) / np.sum(ms**2)
    )
    # exact factorisation → zero loss and error
    u, s, vt = np.linalg.svd(ms)
    exact = {"U": jnp.asarray(u[:, :2] * s[:2]), "V": jnp.asarray(vt[:2].T)}
    assert float(P.matrix_sensing_loss(exact, batch)) == pytest.approx(0.0, abs=1e-20)
    assert float(P.matrix_sensing_test_error(exact, m_star)) == pytest.approx(0.0, abs=1e-20)


def test_matrix_completion_data_observes_distinct_entries_of_a_rank_r_matrix():
    d, rank, n = 6, 2, 20
    batch, m_star = MS.matrix_completion_data(jax.random.key(4), n, d, rank)
    a, y, m = np.asarray(batch["a"]), np.asarray(batch["y"]), np.asarray(m_star)
    positions = []
    for i in range(n):
        assert a[i].sum() == 1.0 and set(np.unique(a[i])) == {0.0, 1.0}
        j, k = np.argwhere(a[i] == 1.0)[0]
        positions.append((j, k))
        assert y[i] == m[j, k]
    assert len(set(positions)) == n
    assert np.linalg.matrix_rank(m) == rank
    smaller, _ = MS.matrix_completion_data(jax.random.key(4), 8, d, rank)
    np.testing.assert_array_equal(np.asarray(smaller["a"]), a[:8])  # nested designs
    with pytest.raises(ValueError, match="n must be"):
        MS.matrix_completion_data(jax.random.key(4), d * d + 1, d, rank)


def test_matrix_relative_error_and_batched_product():
    rng = np.random.default_rng(0)
    m, m_star = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    expected = np.sum((m - m_star) ** 2) / np.sum(m_star ** 2)
    value = MS.matrix_relative_error(jnp.asarray(m), jnp.asarray(m_star))
    assert float(value) == pytest.approx(expected, rel=1e-13)
    u, v = rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(2, 3, 5, 4))
    product = MS.matrix_sensing_product({"U": jnp.asarray(u), "V": jnp.asarray(v)})
    np.testing.assert_allclose(product, u @ np.swapaxes(v, -1, -2), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- classifiers
def _np_cross_entropy(logits, labels):
    logits = np.asarray(logits)
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return -np.mean(logp[np.arange(len(labels)), labels])


def test_mlp_and_cnn_shapes_and_loss():
    key = jax.random.key(6)
    x = jax.random.uniform(key, (4, 8, 8, 1))
    labels = np.array([0, 3, 9, 2])
    mlp = P.init_mlp(key, (64, 16, 10))
    logits = jax.jit(P.mlp_apply)(mlp, x)
    assert logits.shape == (4, 10)
    cnn = P.init_cnn(key, (8, 8, 1), 10, channels=(4, 8))
    assert cnn["convs"][0]["w"].shape == (3, 3, 1, 4)
    logits_c = jax.jit(P.cnn_apply)(cnn, x)
    assert logits_c.shape == (4, 10)
    for lg in (logits, logits_c):
        assert float(jax.jit(P.cross_entropy_loss)(lg, labels)) == pytest.approx(
            _np_cross_entropy(lg, labels), rel=1e-12
        )
    loss_fn = P.classifier_loss(P.cnn_apply)
    batch = {"x": x, "y": jnp.asarray(labels)}
    value, grads = jax.jit(jax.value_and_grad(loss_fn))(cnn, batch)
    assert float(value) == pytest.approx(_np_cross_entropy(logits_c, labels))
    assert jax.tree.structure(grads) == jax.tree.structure(cnn)
    big = jnp.array([[10.0, 0.0], [0.0, 10.0], [10.0, 0.0]])
    assert float(P.accuracy(big, jnp.array([0, 1, 1]))) == pytest.approx(2 / 3)


# ---------------------------------------------------------------- digits
def test_load_digits():
    x_tr, y_tr, x_te, y_te = P.load_digits(test_fraction=0.25, seed=0)
    assert x_tr.shape[1:] == (8, 8, 1) and x_te.shape[1:] == (8, 8, 1)
    assert len(x_tr) + len(x_te) == 1797 and len(x_te) == 450
    assert x_tr.min() >= 0.0 and x_tr.max() <= 1.0 and x_tr.max() == 1.0
    assert set(np.unique(y_tr)) == set(range(10)) and y_te.dtype.kind == "i"

