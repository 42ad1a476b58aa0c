"""Hyperparameters are real numbers, refused by name otherwise (adabias._validation), in every
optimizer and flow that takes them; AdamE's λ lies in (0, 1); Adam-mini's block ids in [0, p)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adabias as ab
from adabias import flows
from adabias.optim import diagonal, inverse_root

jax.config.update("jax_enable_x64", True)

NOT_A_NUMBER = ["0.001", b"0.1", None, True, False, np.bool_(True), jnp.asarray(True),
                [0.1], (0.1,), {"lr": 0.1}, 1 + 2j, np.complex128(1.0), object(),
                np.array(["0.1"]), np.zeros(2)]


def loss(params):
    return 0.5 * (1.5 - 2.0 * params["a"] * params["b"]) ** 2


def batch_loss(params, batch):
    return 0.5 * jnp.mean((batch["y"] - params["a"] * params["b"] * batch["x"]) ** 2)


BATCHES = {"x": np.ones((3, 1)), "y": np.ones((3, 1))}


def slow_loss(params, batch):
    return 0.5 * (params["a"] + params["b"] - 1.0) ** 2


# (builder taking the bad value, the argument's name)
OPTIMIZER_BUILDERS = [
    (lambda x: ab.optim.adam(x), "learning_rate"),
    (lambda x: ab.optim.adam(0.1, x), "beta1"),
    (lambda x: ab.optim.adam(0.1, 0.9, x), "beta2"),
    (lambda x: ab.optim.adam(0.1, 0.9, 0.99, x), "eps"),
    (lambda x: ab.optim.adam(0.1, eps=x, bias_correction=False), "eps"),
    (lambda x: ab.optim.rmsprop(x), "learning_rate"),
    (lambda x: ab.optim.rmsprop(0.1, x), "beta2"),
    (lambda x: ab.optim.scale_by_cks_adam(x), "beta1"),
    (lambda x: ab.optim.scale_by_cks_adam(eps=x, eps_inside_sqrt=False), "eps"),
    (lambda x: ab.optim.gd(x), "learning_rate"),
    (lambda x: ab.optim.heavy_ball(x, 0.9), "learning_rate"),
    (lambda x: ab.optim.heavy_ball(0.1, x), "beta"),
    (lambda x: ab.optim.agm(x, 0.9, 0.99, diagonal, inverse_root(1e-8)), "learning_rate"),
    (lambda x: ab.optim.scale_by_agm(x, 0.99, diagonal, inverse_root(1e-8)), "beta1"),
    (lambda x: ab.optim.scale_by_agm(0.9, x, diagonal, inverse_root(1e-8)), "beta2"),
    (lambda x: ab.optim.inverse_root(x), "eps"),
    (lambda x: ab.optim.inverse_power(x, 1e-8), "lam"),
    (lambda x: ab.optim.adame(x, 0.5), "learning_rate"),
    (lambda x: ab.optim.adame(0.1, x), "lam"),
    (lambda x: ab.optim.adame(0.1, 0.5, eps=x), "eps"),
    (lambda x: ab.optim.adam_mini(x, {"w": jnp.zeros(2, int)}), "learning_rate"),
    (lambda x: ab.optim.adam_mini(0.1, {"w": jnp.zeros(2, int)}, beta2=x), "beta2"),
    (lambda x: ab.optim.adalayer(0.1, eps=x), "eps"),
]
FLOW_BUILDERS = [
    (lambda x: flows.gd_modified(loss, x), "learning_rate"),
    (lambda x: flows.heavy_ball_modified(loss, 0.1, x), "beta"),
    (lambda x: flows.adam_full_batch(loss, x, 0.9, 0.99, 1e-8), "learning_rate"),
    (lambda x: flows.adam_full_batch(loss, 0.1, 0.9, 0.99, x, order=0), "eps"),
    (lambda x: flows.adam_bias(loss, 0.1, x, 0.99, 1e-8), "beta1"),
    (lambda x: flows.adam_small_eps_limit(loss, 0.1, 0.9, x), "beta2"),
    (lambda x: flows.adam_large_eps_limit(loss, 0.1, 0.9, x), "eps"),
    (lambda x: flows.adam_minibatch(batch_loss, BATCHES, x, 0.9, 0.99, 1e-8), "learning_rate"),
    (lambda x: flows.adam_minibatch(batch_loss, BATCHES, 0.1, 0.9, x, 1e-8, order=0), "beta2"),
    (lambda x: flows.label_noise_slow_sgd(slow_loss, None, alpha=x), "alpha"),
    (lambda x: flows.label_noise_slow_agm(slow_loss, None, alpha=0.1, V=diagonal,
                                          S=inverse_root(1e-8), c=x), "c"),
    (lambda x: flows.label_noise_alpha(x, 10), "delta"),
]
BUILDERS = OPTIMIZER_BUILDERS + FLOW_BUILDERS


@pytest.mark.parametrize("build, name", BUILDERS, ids=[f"{i}-{n}" for i, (_, n) in enumerate(BUILDERS)])
def test_a_hyperparameter_that_is_not_a_real_number_is_refused_by_name(build, name):
    for value in NOT_A_NUMBER:
        with pytest.raises(ValueError, match=name):
            build(value)


SCHEDULE_ACCEPTED = [ab.optim.adam, ab.optim.rmsprop, ab.optim.gd,
                     lambda x: ab.optim.heavy_ball(x, 0.9),
                     lambda x: ab.optim.agm(x, 0.9, 0.99, diagonal, inverse_root(1e-8)),
                     lambda x: ab.optim.adame(x, 0.5),
                     lambda x: ab.optim.adam_mini(x, {"w": jnp.zeros(2, int)}),
                     ab.optim.adalayer]


def test_a_schedule_is_an_optimizer_learning_rate_and_nothing_else():
    schedule = optax.constant_schedule(0.1)
    for build in SCHEDULE_ACCEPTED:
        assert isinstance(build(schedule), optax.GradientTransformation)
    refused = FLOW_BUILDERS + [(b, n) for b, n in OPTIMIZER_BUILDERS if n != "learning_rate"]
    for build, name in refused:
        with pytest.raises(ValueError, match=f"{name} must be a real number"):
            build(schedule)


def test_the_message_names_the_value_and_its_type():
    with pytest.raises(ValueError, match=r"learning_rate must be a real number, got "
                                         r"learning_rate='0\.001' \(str\)"):
        ab.optim.adam("0.001")
    with pytest.raises(ValueError, match=r"beta1=True \(bool\)"):
        ab.optim.adam(0.1, True)
    with pytest.raises(ValueError, match=r"eps=None \(NoneType\)"):
        ab.optim.adam(0.1, eps=None)
    with pytest.raises(ValueError, match=r"learning_rate must be a scalar, got an array of shape \(2,\)"):
        ab.optim.adam(np.zeros(2))


@pytest.mark.parametrize("value", [0.1, 1, np.float32(0.1), np.float64(0.1), np.int64(1),
                                   jnp.asarray(0.1), jnp.asarray(0.1, jnp.bfloat16), np.array(0.1)])
def test_real_numbers_of_every_kind_are_accepted(value):
    ab.optim.adam(value, 0.5, 0.5, value)
    ab.optim.heavy_ball(value, 0.5)


def test_traced_hyperparameters_pass_and_still_work():
    params = {"a": jnp.ones(2)}
    grads = {"a": jnp.full(2, 0.5)}

    def step(lr, beta1, lam):
        opt = optax.chain(ab.optim.adam(lr, beta1, 0.99, 1e-8), ab.optim.adame(lr, lam))
        return opt.update(grads, opt.init(params))[0]["a"]

    out = jax.jit(jax.vmap(step))(jnp.array([0.1, 0.2]), jnp.array([0.9, 0.5]), jnp.array([0.3, 0.6]))
    assert out.shape == (2, 2) and bool(jnp.all(jnp.isfinite(out)))
    with pytest.raises(ValueError, match="learning_rate must be a real number, got a traced value"):
        jax.jit(lambda flag: ab.optim.adam(flag))(True)


@pytest.mark.parametrize("lam", [0.0, 1.0, 1.5, -0.5, float("nan"), float("inf")])
def test_adame_lambda_outside_the_open_unit_interval_is_refused(lam):
    with pytest.raises(ValueError, match=rf"lam must lie in \(0, 1\), got lam={lam!r}"):
        ab.optim.adame(0.1, lam)
    with pytest.raises(ValueError, match="lam"):
        ab.optim.inverse_power(lam, 1e-8)


@pytest.mark.parametrize("lam", [1e-6, 0.25, 0.5, 0.999])
def test_adame_lambda_inside_is_accepted(lam):
    opt = ab.optim.adame(0.1, lam)
    updates, _ = opt.update({"a": jnp.ones(3)}, opt.init({"a": jnp.ones(3)}))
    assert bool(jnp.all(jnp.isfinite(updates["a"])))


@pytest.mark.parametrize("blocks, match", [
    ({"w": jnp.array([0, 10**9]), "b": jnp.array([0])}, r"block ids must lie in \[0, 3\).*1000000000"),
    ({"w": jnp.array([0, 3]), "b": jnp.array([0])}, r"\[0, 3\).*max id 3"),
    ({"w": jnp.array([0, -1]), "b": jnp.array([0])}, "non-negative"),
    ({"w": jnp.array([0.0, 1.0]), "b": jnp.array([0.0])}, "integer"),
    ({"w": jnp.array([True, False]), "b": jnp.array([True])}, "integer"),
    ({}, "no leaves"),
])
def test_adam_mini_block_ids_are_checked_against_the_number_of_parameters(blocks, match):
    with pytest.raises(ValueError, match=match):
        ab.optim.adam_mini(0.1, blocks)


def test_adam_mini_block_ids_with_gaps_match_the_contiguous_labels():
    params = {"w": jnp.array([0.3, -1.2]), "b": jnp.array([0.7])}
    grads = {"w": jnp.array([0.1, -0.4]), "b": jnp.array([0.2])}
    gapped = ab.optim.adam_mini(0.1, {"w": jnp.array([2, 0]), "b": jnp.array([2])})
    contiguous = ab.optim.adam_mini(0.1, {"w": jnp.array([1, 0]), "b": jnp.array([1])})
    a = gapped.update(grads, gapped.init(params))[0]
    b = contiguous.update(grads, contiguous.init(params))[0]
    for key in params:
        np.testing.assert_array_equal(a[key], b[key])
    # the largest id allowed is p − 1 (one block per parameter)
    ab.optim.adam_mini(0.1, {"w": jnp.array([2, 1]), "b": jnp.array([0])}).init(params)
