"""Fields are pytrees: a new step size or hyperparameter of the same shapes reuses the compiled
solve (counted with JAX's compilation events), and the numbers are those of the same field
with its hyperparameters as compile-time constants, bit for bit."""

import contextlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adabias import flows

jax.config.update("jax_enable_x64", True)

PARAMS0 = {"a": jnp.array([0.8, -0.3]), "b": jnp.array(0.5)}
BATCHES = {"x": jnp.array([[1.0, 0.5], [-0.7, 1.2], [0.3, -0.9]]), "y": jnp.array([1.5, -0.4, 0.8])}


def loss(params):
    return (0.5 * (1.5 - 2.0 * jnp.prod(params["a"]) * params["b"]) ** 2
            + 0.1 * jnp.sum(params["a"] ** 4) + 0.05 * jnp.sin(params["b"]))


def batch_loss(params, batch):
    residual = batch["y"] - params["a"][0] * params["a"][1] * batch["x"][0] - params["b"] * batch["x"][1]
    return 0.5 * residual**2 + 0.05 * jnp.sum(params["a"] ** 4)


@contextlib.contextmanager
def compilations():
    """The XLA compilations that happen inside the block (a list filled as they happen)."""
    events = []
    listener = lambda event, duration, **kwargs: events.append(event) if "backend_compile" in event else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", flows.AsymptoticRegimeWarning)
            yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def solve(field, h, num_steps=12, **options):
    return flows.solve(field, PARAMS0, jnp.arange(num_steps + 1) * h, **options)


BUILDERS = {
    "adam_full_batch": lambda h, beta1=0.9, beta2=0.95, eps=1e-6: flows.adam_full_batch(loss, h, beta1, beta2, eps),
    "adam_full_batch order 0": lambda h, beta1=0.9, beta2=0.95, eps=1e-6: flows.adam_full_batch(
        loss, h, beta1, beta2, eps, order=0),
    "gd_modified": lambda h, **_: flows.gd_modified(loss, h),
    "heavy_ball_modified": lambda h, beta1=0.7, **_: flows.heavy_ball_modified(loss, h, beta1),
    "adam_small_eps_limit": lambda h, beta1=0.9, beta2=0.95, **_: flows.adam_small_eps_limit(loss, h, beta1, beta2),
    "adam_large_eps_limit": lambda h, beta1=0.9, eps=1e6, **_: flows.adam_large_eps_limit(loss, h * 1e3, beta1, eps),
}


@pytest.mark.parametrize("name", BUILDERS)
def test_a_new_step_size_or_hyperparameter_does_not_compile_the_solve_again(name):
    build = BUILDERS[name]
    with compilations() as events:
        first = solve(build(1e-3), 1e-3)
    assert events, "the first solve compiles"
    with compilations() as events:
        second = solve(build(2e-3), 2e-3)                 # new h, same number of saved points
        third = solve(build(2e-3, beta1=0.8, eps=1e-5), 2e-3)
    assert events == []
    assert not np.array_equal(first["a"], second["a"])
    assert not np.array_equal(second["a"], third["a"]) or name == "gd_modified"   # GD has no β


def test_the_minibatch_flow_reuses_its_solve_for_a_new_h_eps_or_data():
    build = lambda h, eps=1e-3, batches=BATCHES: flows.adam_minibatch(batch_loss, batches, h, 0.8, 0.9, eps)
    kwargs = dict(num_steps=9, rtol=1e-8, atol=1e-10)
    with compilations() as events:
        solve(build(0.05), 0.05, **kwargs)
    assert events
    other_data = {"x": BATCHES["x"][::-1], "y": BATCHES["y"] + 0.5}
    with compilations() as events:
        solve(build(0.04), 0.04, **kwargs)
        solve(build(0.04, eps=1e-2, batches=other_data), 0.04, **kwargs)
    assert events == []


def test_the_step_size_and_hyperparameters_are_leaves_and_the_loss_is_static():
    field = flows.adam_full_batch(loss, 1e-3, 0.9, 0.95, 1e-6)
    leaves = jax.tree.leaves(field)
    assert leaves and all(isinstance(x, jax.Array) for x in leaves)   # h/2, a, c·ε, ε (twice)
    assert jax.tree.structure(field) == jax.tree.structure(flows.adam_full_batch(loss, 5e-3, 0.5, 0.99, 1e-3))
    assert jax.tree.structure(field) != jax.tree.structure(flows.adam_full_batch(lambda p: loss(p), 1e-3, 0.9, 0.95, 1e-6))
    # a field passes through jit as an argument: one compilation for every h
    evaluate = jax.jit(lambda f, y: f(0.0, y))
    for h in (1e-3, 2e-3, 3e-3):
        out = evaluate(flows.gd_modified(loss, h), PARAMS0)
        np.testing.assert_array_equal(out["a"], flows.gd_modified(loss, h)(0.0, PARAMS0)["a"])
    assert evaluate._cache_size() == 1
    # the minibatch flow: h, ε and the data are leaves; β, ρ (which set the window), m static
    piecewise = flows.adam_minibatch(batch_loss, BATCHES, 0.05, 0.8, 0.9, 1e-3)
    assert isinstance(piecewise, flows.PiecewiseField) and float(piecewise.step_size) == 0.05
    assert len(jax.tree.leaves(piecewise)) == 1 + 2 * (2 + 2)   # h of the jumps; per part: data, h, ε


@pytest.mark.parametrize("name", ["adam_full_batch", "heavy_ball_modified", "adam_large_eps_limit",
                                  "minibatch"])
def test_leaves_give_the_numbers_of_compile_time_constants_bit_for_bit(name):
    if name == "minibatch":
        field, h = flows.adam_minibatch(batch_loss, BATCHES, 0.05, 0.8, 0.9, 1e-3, num_steps=12), 0.05
    else:
        field, h = BUILDERS[name](7e-3), 7e-3
    # a closure is static for the solver: its hyperparameters are constants of the program
    constants = lambda t, y, args: field(t, y, args)
    if isinstance(field, flows.PiecewiseField):
        constants = flows.PiecewiseField(constants, h)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", flows.AsymptoticRegimeWarning)
        for key, value in solve(field, h).items():
            np.testing.assert_array_equal(value, solve(constants, h)[key])


def test_a_plain_function_field_keeps_its_interface_and_solve_steps_still_works():
    field = flows.PiecewiseField(lambda t, y, args: -jnp.floor(t / 0.1 + 1e-12) * y, 0.1)
    assert jax.tree.leaves(field) == [0.1]                   # the function is static
    assert float(jax.jit(lambda f: f.step_size * 2)(field)) == 0.2
    ys = flows.solve(field, jnp.array(1.0), jnp.arange(11) * 0.1)
    np.testing.assert_allclose(ys, np.exp(-0.1 * np.cumsum(np.r_[0, np.arange(10)])), rtol=1e-9)
    with compilations():
        paths = flows.solve_steps(lambda h: flows.adam_full_batch(loss, h, 0.9, 0.95, 1e-6),
                                  PARAMS0, [2e-3, 1e-3], [6, 12])
        direct = solve(BUILDERS["adam_full_batch"](1e-3), 1e-3)
    for key in PARAMS0:
        np.testing.assert_allclose(paths[1][key], direct[key], rtol=1e-10, atol=1e-13)
