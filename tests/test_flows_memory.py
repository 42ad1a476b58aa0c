"""flows.memory_corrected (any optax transform, frozen replay) and flows.memory_ema (closed forms).

Checked: the probe finds the known decay of every transform the package uses and refuses a
memory that does not decay; the replay reproduces CKS (2.2)–(2.3) for Adam/RMSProp, Example 2.3
for heavy ball and Barrett–Dherin for GD once βⁿ is below float64 resolution; the closed forms
equal the replay at every n (transients included) for ab.optim's EMA transforms; the truncated
window changes nothing measurable; the orders against the iterates on a tiny problem; the
start's finite-difference warning on a sign update; argument checks. The smoothed Lion and Signum
(ab.optim.smoothed) against a plain NumPy loop.
"""

import warnings

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

jax.config.update("jax_enable_x64", True)

import adabias as ab  # noqa: E402
from adabias import flows  # noqa: E402
from adabias.flows.memory import (MemoryProbe, memory_corrected_with_window,  # noqa: E402
                                  probe_memory)
from helpers import flat, smooth_loss, smooth_params  # noqa: E402

H, BETA, RHO, EPS = 0.01, 0.9, 0.95, 1e-3
PARAMS = smooth_params()
POINTS = [PARAMS, {"w": jnp.array([-0.2, 0.9]), "b": jnp.array([1.1])}]
LATE = 2000          # βⁿ, ρⁿ ≤ 0.95²⁰⁰⁰ ≈ 1e-45: the transients are gone


loss = smooth_loss




def at(field, n, params):
    return flat(jax.jit(field)(n * H, params))


# --- the window ---------------------------------------------------------------------------------

def test_memory_window_is_the_smallest_that_drops_only_weights_below_the_truncation():
    assert flows.memory_window(0.0) == 1
    for gamma, truncation in ((0.5, 1e-17), (0.9, 1e-17), (0.999, 1e-17), (0.9, 1e-8)):
        w = flows.memory_window(gamma, truncation=truncation)
        dropped = lambda k: gamma**k * max(1.0, k * (1 - gamma))
        assert dropped(w) <= truncation
        assert w < 1.2 * np.log(truncation) / np.log(gamma) + 10 / (1 - gamma)
    for bad in ({"decay": 1.0}, {"decay": -0.1}, {"decay": 0.9, "truncation": 0.0},
                {"decay": 0.9, "truncation": 1.0}):
        with pytest.raises(ValueError, match="decay|truncation"):
            flows.memory_window(**bad)


# --- the probe ------------------------------------------------------------------------------------

BLOCKS = {"w": jnp.array([0, 0]), "b": jnp.array([1])}
KNOWN_DECAYS = {   # transform (learning rate -> transform), its slowest decay
    "gd": (lambda lr: ab.optim.gd(lr), 0.0),
    "heavy_ball": (lambda lr: ab.optim.heavy_ball(lr, 0.7), 0.7),
    "adam": (lambda lr: ab.optim.adam(lr, BETA, RHO, EPS), RHO),
    "adam_b1_above_b2": (lambda lr: ab.optim.adam(lr, 0.99, 0.9, EPS), 0.99),
    "adam_uncorrected": (lambda lr: ab.optim.adam(lr, BETA, RHO, EPS, bias_correction=False), RHO),
    "rmsprop": (lambda lr: ab.optim.rmsprop(lr, RHO, EPS), RHO),
    "adamw": (lambda lr: optax.adamw(lr, b1=0.8, b2=0.9, eps=0.0, eps_root=EPS,
                                     weight_decay=0.1), 0.9),
    "nadam": (lambda lr: optax.nadam(lr, b1=0.8, b2=0.9, eps=0.0, eps_root=EPS), 0.9),
    "adam_mini": (lambda lr: ab.optim.adam_mini(lr, BLOCKS, 0.8, 0.9, EPS), 0.9),
    "adalayer": (lambda lr: ab.optim.adalayer(lr, 0.8, 0.9, EPS), 0.9),
    "adame": (lambda lr: ab.optim.adame(lr, 0.25, 0.8, 0.9, EPS), 0.9),
    "smoothed_lion": (lambda lr: ab.optim.smoothed_lion(lr, 0.8, 0.9, 1e-2), 0.9),
    "smoothed_signum": (lambda lr: ab.optim.smoothed_signum(lr, 0.8, 1e-2), 0.8),
    "nesterov": (lambda lr: optax.sgd(lr, momentum=0.8, nesterov=True), 0.8),
    "adam_0999": (lambda lr: optax.adam(lr, b1=0.9, b2=0.999), 0.999),
}


@pytest.mark.parametrize("name", list(KNOWN_DECAYS))
def test_the_probe_finds_the_known_decay_and_its_window(name):
    make, decay = KNOWN_DECAYS[name]
    probe = probe_memory(make(H), PARAMS)
    assert isinstance(probe, MemoryProbe)
    assert abs(probe.decay - decay) <= 1e-6 * decay
    assert probe.window == flows.memory_window(decay)
    assert probe_memory(make(H), PARAMS, truncation=1e-8).window == flows.memory_window(
        decay, truncation=1e-8)
    if name != "adam_mini":   # a learning rate traced by jit: the same probe
        traced = jax.jit(lambda lr: jnp.asarray(probe_memory(make(lr), PARAMS).window))(H)
        assert int(traced) == probe.window


def test_gd_replays_one_step_and_a_probe_is_cached():
    assert probe_memory(ab.optim.gd(H), PARAMS) == MemoryProbe(0.0, 1, 2)
    optimizer = ab.optim.adam(H, BETA, RHO, EPS)
    assert probe_memory(optimizer, PARAMS) is probe_memory(optimizer, POINTS[1])
    other_shapes = {"w": jnp.zeros(3), "b": jnp.zeros(1)}
    assert probe_memory(optimizer, other_shapes) is not probe_memory(optimizer, PARAMS)


def _cascade(beta):
    """m₁ ← βm₁ + g, m₂ ← βm₂ + m₁: a response kβᵏ, which settles slowly."""
    def update(g, state, params=None):
        m1 = jax.tree.map(lambda m, x: beta * m + x, state[0], g)
        m2 = jax.tree.map(lambda m, x: beta * m + x, state[1], m1)
        return m2, (m1, m2)
    return optax.GradientTransformation(
        lambda p: (jax.tree.map(jnp.zeros_like, p),) * 2, update)


def test_the_probe_refuses_what_it_cannot_window(monkeypatch):
    with pytest.raises(ValueError, match="does not decay.*memory_corrected_with_window"):
        probe_memory(optax.adagrad(H), PARAMS)
    with pytest.raises(ValueError, match="traced values.*memory_corrected_with_window"):
        jax.jit(lambda b: probe_memory(ab.optim.adam(H, b, RHO, EPS), PARAMS).window)(BETA)
    monkeypatch.setattr(flows.memory, "PROBE_MAX_STEPS", 16)
    with pytest.raises(ValueError, match="not settled.*16 steps"):
        probe_memory(_cascade(0.5), PARAMS)
    # the refusal reaches the caller when the field is first traced
    with pytest.raises(ValueError, match="does not decay"):
        jax.jit(flows.memory_corrected(optax.adagrad(H), loss, H))(0.0, PARAMS)
    # an explicit window replays what the probe refuses
    field = memory_corrected_with_window(optax.adagrad(H), loss, H, 5, check_start=False)
    assert np.all(np.isfinite(at(field, 3, PARAMS)))


def test_the_probed_window_gives_the_field_of_the_explicit_one():
    for name in ("adamw", "smoothed_signum", "gd"):
        make, decay = KNOWN_DECAYS[name]
        probed = flows.memory_corrected(make(H), loss, H, check_start=False)
        explicit = memory_corrected_with_window(make(H), loss, H, flows.memory_window(decay),
                                                check_start=False)
        for n in (0, 3, 700):
            np.testing.assert_array_equal(at(probed, n, PARAMS), at(explicit, n, PARAMS))


# --- reductions to the existing fields ------------------------------------------------------------

@pytest.mark.parametrize("beta1", [BETA, 0.0], ids=["adam", "rmsprop"])
def test_replay_of_adam_and_rmsprop_is_cks_flow_once_the_transient_is_gone(beta1):
    optimizer = (ab.optim.adam(H, beta1, RHO, EPS) if beta1 else ab.optim.rmsprop(H, RHO, EPS))
    replay = flows.memory_corrected(optimizer, loss, H)
    cks = flows.adam_full_batch(loss, H, beta1, RHO, EPS)
    for params in POINTS:
        np.testing.assert_allclose(at(replay, LATE, params), flat(cks(0.0, params)),
                                   rtol=1e-13, atol=1e-14)
    order0 = flows.memory_corrected(optimizer, loss, H, 0)
    signgd = flows.adam_full_batch(loss, H, beta1, RHO, EPS, order=0)
    np.testing.assert_allclose(at(order0, LATE, PARAMS), flat(signgd(0.0, PARAMS)), rtol=1e-14)


def test_replay_of_heavy_ball_and_gd_is_example_23_and_barrett_dherin():
    heavy = flows.memory_corrected(ab.optim.heavy_ball(H, BETA), loss, H)
    gd = flows.memory_corrected(ab.optim.gd(H), loss, H)
    for params in POINTS:
        np.testing.assert_allclose(at(heavy, LATE, params),
                                   flat(flows.heavy_ball_modified(loss, H, BETA)(0.0, params)),
                                   rtol=1e-13)
        # GD has no memory: every n is "late"
        for n in (0, 7):
            np.testing.assert_allclose(at(gd, n, params),
                                       flat(flows.gd_modified(loss, H)(0.0, params)), rtol=1e-14)
    # inside heavy ball's transient (zero momentum) the fields differ at order one
    early = at(heavy, 3, PARAMS)
    assert np.max(np.abs(early - flat(flows.heavy_ball_modified(loss, H, BETA)(0.0, PARAMS)))) > 1.0


# --- closed forms against the replay -------------------------------------------------------------

def _pairs():
    blocks = {"w": jnp.array([0, 0]), "b": jnp.array([1])}
    return {
        "adam": (ab.optim.adam(H, BETA, RHO, EPS), flows.adam_ema_form(BETA, RHO, EPS)),
        "adam_eps_outside": (ab.optim.adam(H, BETA, RHO, EPS, eps_inside_sqrt=False),
                             flows.adam_ema_form(BETA, RHO, EPS, eps_inside_sqrt=False)),
        "adam_uncorrected": (ab.optim.adam(H, BETA, RHO, EPS, bias_correction=False),
                             flows.adam_ema_form(BETA, RHO, EPS, bias_correction=False)),
        "adame": (ab.optim.adame(H, 0.25, BETA, RHO, EPS),
                  flows.agm_ema_form(BETA, RHO, ab.optim.diagonal,
                                     ab.optim.inverse_power(0.25, EPS))),
        "adam_mini": (ab.optim.adam_mini(H, blocks, BETA, RHO, EPS, initial_v=0.3),
                      flows.agm_ema_form(BETA, RHO, ab.optim.block_mean(blocks),
                                         ab.optim.inverse_root(EPS), initial_v=0.3)),
        "adalayer": (ab.optim.adalayer(H, BETA, RHO, EPS),
                     flows.agm_ema_form(BETA, RHO, ab.optim.leaf_mean, ab.optim.inverse_root(EPS))),
        "heavy_ball": (ab.optim.heavy_ball(H, BETA), flows.heavy_ball_ema_form(BETA)),
    }


@pytest.mark.parametrize("name", list(_pairs()))
def test_closed_form_equals_the_replay_at_every_step(name):
    optimizer, form = _pairs()[name]
    replay = jax.jit(jax.vmap(flows.memory_corrected(optimizer, loss, H,
                                                     check_start=False), in_axes=(0, None)))
    closed = jax.vmap(flows.memory_corrected_ema(form, loss, H), in_axes=(0, None))
    times = jnp.array([0, 1, 2, 5, 40, 300, LATE]) * H
    rows = jax.vmap(lambda tree: ravel_pytree(tree)[0])
    expected = np.asarray(rows(closed(times, PARAMS)))
    got = np.asarray(rows(replay(times, PARAMS)))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.max(np.abs(expected)))


def test_ema_weight_sums_are_the_sums_they_name():
    for beta in (0.0, 0.5, 0.9, 0.999):
        for n in (0, 1, 3, 50):
            k = np.arange(n + 1)
            w = (1 - beta) * beta**k
            total, first = flows.memory_ema.ema_weight_sums(beta, n, bias_correction=False)
            np.testing.assert_allclose([total, first], [w.sum(), (k * w).sum()], rtol=1e-12,
                                       atol=1e-15)
            _, corrected = flows.memory_ema.ema_weight_sums(beta, n, bias_correction=True)
            expected = 0.0 if beta == 0 else (beta / (1 - beta)
                                              - (n + 1) * beta ** (n + 1) / (1 - beta ** (n + 1)))
            np.testing.assert_allclose(corrected, expected, rtol=1e-10, atol=1e-14)


def test_truncated_window_changes_nothing_measurable():
    optimizer = optax.adamw(H, b1=0.8, b2=0.9, eps=0.0, eps_root=EPS, weight_decay=0.1)
    truncated = flows.memory_corrected(optimizer, loss, H, check_start=False)
    exact = flows.memory_corrected(optimizer, loss, H, truncation=1e-300,
                                   check_start=False)
    window = flows.memory_window(0.9)
    assert flows.memory_window(0.9, truncation=1e-300) > 2 * window
    for n in (window - 1, window + 5, 3 * window):
        np.testing.assert_allclose(at(truncated, n, PARAMS), at(exact, n, PARAMS), rtol=1e-15,
                                   atol=1e-15)


def test_a_traced_order_multiplies_the_correction():
    optimizer = ab.optim.smoothed_signum(H, 0.8, 1e-2)
    fields = {o: flows.memory_corrected(optimizer, loss, H, o) for o in (0, 1)}
    traced = jax.jit(lambda t, p, o: flows.memory_corrected(optimizer, loss, H, o)(t, p))
    for order in (0, 1):
        np.testing.assert_allclose(flat(traced(5 * H, PARAMS, jnp.asarray(float(order)))),
                                   at(fields[order], 5, PARAMS), rtol=1e-14)


# --- orders against the iterates --------------------------------------------------------------

def _errors(make, step_sizes, horizon, params0):
    counts = flows.step_counts(step_sizes, horizon)
    (iterates,) = flows.iterates_per_step_size(make, loss, params0, step_sizes, counts)
    solutions = flows.solve_steps(
        lambda h, order: flows.memory_corrected(make(h), loss, h, order,
                                                check_start=False),
        params0, step_sizes * 2, counts * 2, hyper={"order": [1.0] * 2 + [0.0] * 2},
        sequential=True)
    return (flows.global_errors(solutions[:2], iterates),
            flows.global_errors(solutions[2:], iterates))


def test_orders_against_the_iterates_of_smoothed_lion():
    step_sizes = [2e-3, 1e-3]
    make = lambda learning_rate: ab.optim.smoothed_lion(learning_rate, 0.8, 0.9, 1e-2)
    order1, order0 = _errors(make, step_sizes, 0.1, PARAMS)
    slope = lambda e: np.log(e[0] / e[1]) / np.log(2.0)
    assert abs(slope(order1) - 2.0) < 0.3 and abs(slope(order0) - 1.0) < 0.3
    assert np.all(order1 < order0 / 5)


def test_solve_steps_takes_a_solver_and_tsit5_matches_dopri8_on_a_memory_flow():
    """Both within the step-size controller's tolerance (rtol 1e-11) of the flow."""
    make = lambda learning_rate: ab.optim.smoothed_signum(learning_rate, 0.8, 1e-2)
    field = lambda h: flows.memory_corrected(make(h), loss, h, check_start=False)
    step_sizes, counts = [2e-3, 1e-3], [20, 40]
    dopri8 = flows.solve_steps(field, PARAMS, step_sizes, counts, sequential=True)
    tsit5 = flows.solve_steps(field, PARAMS, step_sizes, counts, sequential=True,
                              solver=diffrax.Tsit5())
    for a, b in zip(dopri8, tsit5):
        np.testing.assert_allclose(flat(jax.tree.map(lambda x: x[-1], b)),
                                   flat(jax.tree.map(lambda x: x[-1], a)), rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adamw", "nadam", "nesterov", "adalayer"])
def test_orders_against_the_iterates_of_optax_and_ab_optim_transforms(name):
    make = {"adamw": lambda learning_rate: optax.adamw(learning_rate, b1=0.8, b2=0.9, eps=0.0,
                                                       eps_root=EPS, weight_decay=0.1),
            "nadam": lambda learning_rate: optax.nadam(learning_rate, b1=0.8, b2=0.9, eps=0.0,
                                                       eps_root=EPS),
            "nesterov": lambda learning_rate: optax.sgd(learning_rate, momentum=0.8, nesterov=True),
            "adalayer": lambda learning_rate: ab.optim.adalayer(learning_rate, 0.8, 0.9, EPS)}[name]
    order1, order0 = _errors(make, [5e-4, 2.5e-4], 0.1, PARAMS)
    assert abs(np.log2(order1[0] / order1[1]) - 2.0) < 0.3
    assert abs(np.log2(order0[0] / order0[1]) - 1.0) < 0.3


# --- the start's smoothness check and the argument checks ------------------------------------

def _sign_loss(params):      # ∂E/∂θ₂ = −1e-2 at θ = 0: a sign flips within the memory's reach
    return (0.5 * (params[0] - 1.0) ** 2 + 0.5 * (params[1] - 1e-2) ** 2
            + 0.1 * params[0] * params[1] ** 2)


def _warnings_of(field, run):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jax.block_until_ready(run(field))
        jax.effects_barrier()
    return [w for w in caught if "not smooth" in str(w.message)]


def test_a_sign_update_warns_at_the_start_and_a_smoothed_one_does_not():
    h, start = 1e-3, jnp.zeros(2)
    at_start = lambda f: jax.jit(f)(0.0, start)
    lion = flows.memory_corrected(optax.lion(h, b1=0.9, b2=0.99), _sign_loss, h)
    assert len(_warnings_of(lion, at_start)) == 1
    assert not _warnings_of(lion, at_start)          # once per field
    late = flows.memory_corrected(optax.lion(h, b1=0.9, b2=0.99), _sign_loss, h)
    assert not _warnings_of(late, lambda f: jax.jit(f)(5 * h, start))      # only at n = 0
    smooth = flows.memory_corrected(ab.optim.smoothed_lion(h, 0.9, 0.99, 1e-2), _sign_loss, h)
    assert not _warnings_of(smooth, at_start)
    # inside a solve, under solve_steps' vmap: one warning for all members
    steps = lambda f: flows.solve_steps(
        lambda hh: flows.memory_corrected(optax.lion(hh, b1=0.9, b2=0.99), _sign_loss, hh),
        start, [h, h / 2], [1, 2])
    assert len(_warnings_of(None, steps)) == 1


def test_h_is_checked_against_an_inject_hyperparams_learning_rate():
    optimizer = optax.inject_hyperparams(optax.adam)(learning_rate=2e-3, b1=0.9, b2=0.99)
    with pytest.raises(ValueError, match="learning_rate=0.002"):
        jax.jit(flows.memory_corrected(optimizer, loss, 1e-3))(0.0, PARAMS)
    jax.jit(flows.memory_corrected(optimizer, loss, 2e-3))(0.0, PARAMS)


@pytest.mark.parametrize("call, error, match", [
    (lambda: flows.memory_corrected(ab.optim.gd(H), loss, H, 2), ValueError, "order"),
    (lambda: flows.memory_corrected(ab.optim.gd(H), loss, H, True), ValueError, "order"),
    (lambda: flows.memory_corrected(ab.optim.gd(H), loss, -H), ValueError, "h must"),
    (lambda: flows.memory_corrected(ab.optim.gd(H), loss, H, truncation=1.0), ValueError,
     "truncation"),
    (lambda: memory_corrected_with_window(ab.optim.gd(H), loss, H, 0), ValueError, "window"),
    (lambda: memory_corrected_with_window(ab.optim.gd(H), loss, H, 2.0), ValueError, "window"),
    (lambda: memory_corrected_with_window(ab.optim.gd(H), loss, H, True), ValueError, "window"),
    (lambda: probe_memory(ab.optim.gd(H), PARAMS, truncation=0.0), ValueError, "truncation"),
    (lambda: flows.memory_corrected(lambda g: g, loss, H), TypeError,
     "GradientTransformation"),
    (lambda: flows.memory_corrected(ab.optim.gd(H), "loss", H), TypeError, "loss_fn"),
    (lambda: flows.memory_corrected_ema((0.9, 0.9), loss, H), TypeError, "EMAForm"),
    (lambda: flows.memory_corrected_ema(flows.heavy_ball_ema_form(0.9), loss, H, 3), ValueError,
     "order"),
    (lambda: flows.adam_ema_form(0.9, 1.2, 1e-8), ValueError, "beta2"),
    (lambda: flows.adam_ema_form(0.9, 0.9, 0.0), ValueError, "eps"),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_float32_is_refused():
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(RuntimeError, match="float64"):
            flows.memory_corrected(ab.optim.gd(H), loss, H)
        with pytest.raises(RuntimeError, match="float64"):
            flows.memory_corrected_ema(flows.heavy_ball_ema_form(0.0), loss, H)
    finally:
        jax.config.update("jax_enable_x64", True)


# --- the smoothed sign methods against plain loops -------------------------------------------

def _numpy_grad(theta):
    return np.array([theta[0] * theta[1] ** 2 - 1.0, theta[0] ** 2 * theta[1] + np.sin(theta[1])])


def _jax_loss(theta):
    return 0.5 * theta[0] ** 2 * theta[1] ** 2 - theta[0] - jnp.cos(theta[1])


@pytest.mark.parametrize("method", ["lion", "signum"])
def test_smoothed_lion_and_signum_match_a_numpy_loop(method):
    h, b1, b2, eps, steps = 0.05, 0.8, 0.95, 1e-2, 30
    theta, m = np.array([0.5, -1.2]), np.zeros(2)
    expected = [theta.copy()]
    for _ in range(steps):
        g = _numpy_grad(theta)
        if method == "lion":
            c = b1 * m + (1 - b1) * g
            m = b2 * m + (1 - b2) * g
        else:
            c = m = b1 * m + (1 - b1) * g
        theta = theta - h * c / np.sqrt(c * c + eps)
        expected.append(theta.copy())
    optimizer = (ab.optim.smoothed_lion(h, b1, b2, eps) if method == "lion"
                 else ab.optim.smoothed_signum(h, b1, eps))
    trajectory = ab.run(optimizer, _jax_loss, jnp.array([0.5, -1.2]), steps)
    np.testing.assert_allclose(np.asarray(trajectory.params), np.array(expected), rtol=1e-12)


def test_smoothed_sign_tends_to_sign_and_bad_hyperparameters_are_named():
    x = jnp.array([-2.0, -0.3, 0.4, 5.0])
    np.testing.assert_allclose(ab.optim.smoothed_sign(x, 1e-12), np.sign(x), rtol=1e-10)
    for call, match in ((lambda: ab.optim.smoothed_lion(1e-3, 1.0), "beta1"),
                        (lambda: ab.optim.smoothed_lion(1e-3, 0.9, -0.1), "beta2"),
                        (lambda: ab.optim.smoothed_signum(1e-3, 0.9, 0.0), "eps"),
                        (lambda: ab.optim.smoothed_signum(-1e-3), "learning_rate")):
        with pytest.raises(ValueError, match=match):
            call()
