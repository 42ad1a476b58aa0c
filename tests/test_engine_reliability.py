"""The engine under bad inputs and faults: checkpoints that cannot be mixed up or half
written, sweep members that do not depend on each other, parameter pytrees that are not
arrays (equinox/flax models)."""

import dataclasses
import warnings
from typing import Callable

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


def init(key):
    return {"w": 0.1 * jax.random.normal(key, (3,)), "b": jnp.array(0.0)}


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


# --- parameters that are not arrays (equinox / flax models) -----------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Model:
    """Like an ``eqx.Module`` holding an activation: the function is a leaf; calling applies it."""

    w: jax.Array
    activation: Callable

    def __call__(self, x):
        return self.activation(x @ self.w)


@dataclasses.dataclass
class StaticModel:
    """Like an ``eqx.Module`` whose activation is a static field: callable, only array leaves."""

    w: jax.Array
    activation: Callable = jnp.tanh

    def __call__(self, x):
        return self.activation(x @ self.w)


jax.tree_util.register_dataclass(StaticModel, data_fields=["w"], meta_fields=["activation"])

X = jax.random.normal(jax.random.key(6), (5, 3))
Y = jnp.array([0.5, -0.2, 0.1, 0.3, -0.4])


def model_loss(model):
    return 0.5 * jnp.mean((model(X) - Y) ** 2)


def test_a_callable_model_with_array_leaves_is_a_start_not_an_init_function():
    model = StaticModel(jnp.array([0.1, -0.2, 0.3]))
    make = lambda learning_rate: ab.optim.adam(learning_rate)  # noqa: E731
    result = ab.sweep(make, model_loss, model, 10, grid={"learning_rate": [0.01, 0.1]}, save_every=5)
    assert isinstance(result.trajectory.params, StaticModel)
    for i, learning_rate in enumerate([0.01, 0.1]):
        single = ab.run(make(learning_rate), model_loss, model, 10, save_every=5)
        np.testing.assert_allclose(result.member(i).params.w, single.params.w, rtol=1e-12)


NOT_ARRAYS = {
    "a function leaf (equinox activation)": (Model(jnp.array([0.1, -0.2, 0.3]), jax.nn.relu), r"\.activation.*eqx\.partition"),
    "a string leaf": ({"w": jnp.zeros(3), "name": "layer"}, r"\['name'\].*eqx\.partition"),
    "an object leaf": ({"w": jnp.zeros(3), "rng": np.random.default_rng(0)}, r"not arrays.*\['rng'\]"),
    "an integer leaf": ({"w": jnp.zeros(3), "b": 0}, r"not floating point.*\['b'\]"),
    "an integer array": ({"w": jnp.arange(3)}, r"not floating point.*\['w'\]"),
    "a boolean mask": ({"w": jnp.zeros(3), "mask": jnp.array([True, False, True])}, r"not floating point.*\['mask'\]"),
    "a PRNG key": ({"w": jnp.zeros(3), "key": jax.random.key(0)}, r"not floating point.*\['key'\]"),
    "None": (None, "no array leaves"),
    "an empty dict": ({}, "no array leaves"),
    "a function": (init, "init_params"),
}


@pytest.mark.parametrize("case", list(NOT_ARRAYS))
def test_parameters_that_are_not_float_arrays_are_named(case):
    params0, message = NOT_ARRAYS[case]
    loss = lambda p: jnp.sum(jnp.asarray(jax.tree.leaves(p)[0], float) ** 2)  # noqa: E731
    with pytest.raises(ValueError, match=message) as error:
        ab.run(ab.optim.gd(0.1), loss, params0, 2)
    assert "loss_fn could not be called" not in str(error.value)
    with pytest.raises(ValueError, match=message):
        ab.sweep(lambda learning_rate: ab.optim.gd(learning_rate), loss, params0, 2,
                 grid={"learning_rate": [0.1]})


def test_init_params_draws_each_seed_start_and_is_explicit():
    make = lambda learning_rate: ab.optim.gd(learning_rate)  # noqa: E731
    result = ab.sweep(make, full_loss, None, 4, grid={"learning_rate": [0.1]}, num_seeds=3, key=KEY,
                      init_params=init)
    starts = np.asarray(result.trajectory.params["w"][:, 0])
    assert len({tuple(row) for row in starts.round(12)}) == 3
    expected = init(jax.random.fold_in(jax.random.fold_in(KEY, 2), 1))
    np.testing.assert_array_equal(starts[2], expected["w"])
    with pytest.raises(ValueError, match="not both"):
        ab.sweep(make, full_loss, PARAMS0, 4, grid={"learning_rate": [0.1]}, init_params=init)
    with pytest.raises(ValueError, match="init_params must be a function"):
        ab.sweep(make, full_loss, None, 4, grid={"learning_rate": [0.1]}, init_params=PARAMS0)
    with pytest.raises(ValueError, match=r"init_params\(key\).*eqx\.partition"):
        ab.sweep(make, model_loss, None, 4, grid={"learning_rate": [0.1]},
                 init_params=lambda key: Model(jax.random.normal(key, (3,)), jax.nn.relu))
    with pytest.raises(ValueError, match=r"not floating point: init_params\(key\)\['b'\]"):
        ab.sweep(make, full_loss, None, 4, grid={"learning_rate": [0.1]},
                 init_params=lambda key: {"w": jax.random.normal(key, (3,)), "b": jnp.array(0)})
