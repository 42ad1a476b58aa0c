"""problems.tanh_net: the network, its loss and gradient against a plain NumPy computation,
the teacher's data (an exact minimum), the two layouts, the start and the argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from adabias import problems  # noqa: E402

THETA = {"w": np.array([0.7, -1.3, 0.2]), "b": np.array([0.1, 0.4, -0.6]),
         "a": np.array([1.1, -0.5, 0.3]), "c": 0.2}


def _numpy_loss_and_grad(theta, x, y):
    """E and ∂E/∂(w, b, a, c) by hand: r = f − y, ∂f/∂a_j = tanh u_j, ∂f/∂c = 1,
    ∂f/∂b_j = a_j(1 − tanh² u_j), ∂f/∂w_j = x·∂f/∂b_j, u_j = w_j x + b_j."""
    t = np.tanh(np.outer(x, theta["w"]) + theta["b"])
    r = t @ theta["a"] + theta["c"] - y
    db = theta["a"] * (1.0 - t**2)
    grads = {"w": np.mean(r[:, None] * db * x[:, None], axis=0),
             "b": np.mean(r[:, None] * db, axis=0),
             "a": np.mean(r[:, None] * t, axis=0), "c": np.mean(r)}
    return 0.5 * np.mean(r**2), grads


def test_loss_and_gradient_match_numpy():
    data = problems.tanh_net_sine_data(8)
    x = np.linspace(-1.0, 1.0, 8)
    np.testing.assert_array_equal(np.asarray(data["x"]), x)
    np.testing.assert_array_equal(np.asarray(data["y"]), np.sin(2.0 * x))
    params = jax.tree.map(jnp.asarray, THETA)
    loss, grads = jax.value_and_grad(problems.tanh_net_loss)(params, data)
    expected_loss, expected_grads = _numpy_loss_and_grad(THETA, x, np.sin(2.0 * x))
    np.testing.assert_allclose(float(loss), expected_loss, rtol=1e-14)
    for name in THETA:
        np.testing.assert_allclose(np.asarray(grads[name]), expected_grads[name], rtol=1e-13,
                                   atol=1e-16)


def test_the_teacher_is_an_exact_minimum():
    teacher = problems.init_tanh_net(jax.random.key(0))
    data = problems.tanh_net_teacher_data(teacher, 8)
    loss, grads = jax.value_and_grad(problems.tanh_net_loss)(teacher, data)
    assert float(loss) == 0.0
    assert all(np.all(np.asarray(g) == 0.0) for g in jax.tree.leaves(grads))
    moved = jax.tree.map(lambda p: p + 1e-3, teacher)
    assert float(problems.tanh_net_loss(moved, data)) > 0.0


def test_layers_are_the_same_parameters():
    params = problems.init_tanh_net(jax.random.key(3), units=4)
    layers = problems.tanh_net_by_layer(params)
    assert layers["hidden"].shape == (4, 2) and layers["output"].shape == (5,)
    np.testing.assert_array_equal(np.asarray(layers["hidden"][:, 0]), np.asarray(params["w"]))
    np.testing.assert_array_equal(np.asarray(layers["output"][-1]), np.asarray(params["c"]))
    back = problems.tanh_net_by_kind(layers)
    for name in params:
        np.testing.assert_array_equal(np.asarray(back[name]), np.asarray(params[name]))
    data = problems.tanh_net_sine_data(5)
    np.testing.assert_array_equal(
        np.asarray(problems.tanh_net_loss(problems.tanh_net_by_kind(layers), data)),
        np.asarray(problems.tanh_net_loss(params, data)))


def test_the_start_is_fixed_by_its_key():
    params = problems.init_tanh_net(jax.random.key(0))
    assert {k: np.shape(v) for k, v in params.items()} == {"w": (3,), "b": (3,), "a": (3,),
                                                            "c": ()}
    assert all(np.asarray(v).dtype == np.float64 for v in params.values())
    k = jax.random.split(jax.random.key(0), 3)
    np.testing.assert_array_equal(np.asarray(params["b"]),
                                  0.5 * np.asarray(jax.random.normal(k[1], (3,))))
    np.testing.assert_allclose(np.asarray(params["a"]),
                               np.asarray(jax.random.normal(k[2], (3,))) / np.sqrt(3.0),
                               rtol=1e-15)
    assert float(params["c"]) == 0.1
    again = problems.init_tanh_net(jax.random.key(0))
    assert all(np.array_equal(params[n], again[n]) for n in params)


@pytest.mark.parametrize("call", [lambda: problems.init_tanh_net(jax.random.key(0), 0),
                                  lambda: problems.init_tanh_net(jax.random.key(0), 2.0),
                                  lambda: problems.tanh_net_sine_data(0),
                                  lambda: problems.tanh_net_teacher_data({}, True)])
def test_bad_sizes_are_named(call):
    with pytest.raises(ValueError, match="units|n must"):
        call()
