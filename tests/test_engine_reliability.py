"""The engine under bad inputs and faults: checkpoints that cannot be mixed up or half
written, sweep members that do not depend on each other, parameter pytrees that are not
arrays (equinox/flax models)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adabias as ab

jax.config.update("jax_enable_x64", True)

TARGET = jnp.array([1.0, -2.0, 0.5])
PARAMS0 = {"w": jnp.array([0.1, 0.2, -0.3]), "b": jnp.array(0.5)}
BATCHES = {"x": jax.random.normal(jax.random.key(0), (3, 4, 3)), "y": jax.random.normal(jax.random.key(1), (3, 4))}
KEY = jax.random.key(3)


def full_loss(params):
    return 0.5 * jnp.sum((params["w"] - TARGET) ** 2) + 0.1 * jnp.sum(params["w"] ** 4) + params["b"] ** 2


def batch_loss(params, batch):
    return 0.5 * jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)


def label_noise(key, batch):
    return {**batch, "y": batch["y"] + 0.5 * jax.random.rademacher(key, batch["y"].shape, dtype=batch["y"].dtype)}


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --- sweep members do not depend on each other --------------------------------------------------


def quartic(dtype):
    x = jax.random.normal(jax.random.key(0), (20, 8), dtype)
    y = jax.random.normal(jax.random.key(1), (20,), dtype)

    def loss(params):
        return 0.5 * jnp.mean((x @ params["w"] + params["b"] - y) ** 2) + 0.1 * jnp.sum(params["w"] ** 4)

    return loss, {"w": jnp.full(8, 0.1, dtype), "b": jnp.zeros((), dtype)}


HUGE = {jnp.float32: 1e30, jnp.float64: 1e100}  # a learning rate whose first step overflows p⁴


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
def test_a_diverging_member_leaves_the_others_bitwise_unchanged(dtype, save_every=16):
    loss, params0 = quartic(dtype)
    make = lambda learning_rate, beta2: ab.optim.adam(learning_rate, 0.9, beta2, 1e-8)  # noqa: E731
    sweep = lambda rates: ab.sweep(make, loss, params0, 64, grid={"learning_rate": rates, "beta2": [0.9, 0.99]},  # noqa: E731
                                   save_every=save_every)
    with pytest.warns(RuntimeWarning, match="2 of 6 sweep members diverged"):
        with_divergence = sweep([0.01, 0.03, HUGE[dtype]])
    without = sweep([0.01, 0.03, 0.02])
    diverged = np.asarray(with_divergence.trajectory.diverged_at)
    assert (diverged[:4] == -1).all() and (diverged[4:] >= 0).all()
    survivors = lambda result: jax.tree.map(lambda x: x[:4], result.trajectory)  # noqa: E731
    assert_trees_equal(survivors(with_divergence), survivors(without))
    rtol = 1e-5 if dtype == jnp.float32 else 1e-12
    for i, (learning_rate, beta2) in [(3, (0.03, 0.99)), (4, (HUGE[dtype], 0.9))]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            single = ab.run(make(learning_rate, beta2), loss, params0, 64, save_every=save_every)
        member = with_divergence.member(i)
        assert int(member.diverged_at) == int(single.diverged_at)
        np.testing.assert_allclose(member.params["w"], single.params["w"], rtol=rtol, atol=rtol * 1e-2)


def test_members_diverging_in_different_blocks_with_noise_leave_the_others_unchanged():
    make = lambda learning_rate: ab.optim.heavy_ball(learning_rate, 0.5)  # noqa: E731
    params0 = jax.tree.map(lambda x: x.astype(jnp.float32), PARAMS0)
    batches = jax.tree.map(lambda x: x.astype(jnp.float32), BATCHES)
    loss = lambda p, batch: batch_loss(p, batch) + 0.1 * jnp.sum(p["w"] ** 4)  # noqa: E731
    sweep = lambda rates: ab.sweep(make, loss, params0, 48, grid={"learning_rate": rates}, num_seeds=2,  # noqa: E731
                                   key=KEY, batches=batches, noise=label_noise, save_every=8)
    with pytest.warns(RuntimeWarning, match="sweep members diverged"):
        with_divergence = sweep([0.05, 6.0, 0.1, 30.0])
    without = sweep([0.05, 0.2, 0.1, 0.3])
    diverged = np.asarray(with_divergence.trajectory.diverged_at).reshape(4, 2)
    assert (diverged[[0, 2]] == -1).all() and (diverged[[1, 3]] >= 0).all()
    keep = np.array([0, 1, 4, 5])
    assert_trees_equal(jax.tree.map(lambda x: x[keep], with_divergence.trajectory),
                       jax.tree.map(lambda x: x[keep], without.trajectory))
