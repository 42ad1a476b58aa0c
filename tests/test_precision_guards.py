"""Guards of the flow comparisons: float32 input is refused (DESIGN §2) unless
``allow_float32=True``; bad time grids, step sizes, errors and mismatched pytrees are refused
by name; solving a first-order flow outside its asymptotic regime warns
(:class:`AsymptoticRegimeWarning`), inside it does not, and traced hyperparameters never do."""

import contextlib
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adabias import flows
from adabias.flows import AsymptoticRegimeWarning, first_order_ratio
from adabias.optim import diagonal, inverse_root

jax.config.update("jax_enable_x64", True)


def loss(params):
    return 0.5 * (1.5 - 2.0 * params["a"] * params["b"]) ** 2 + 0.05 * params["a"] ** 4


def batch_loss(params, batch):
    return 0.5 * jnp.mean((batch["y"] - params["a"] * params["b"] * batch["x"]) ** 2)


def slow_loss(params, batch):   # a line of minimizers: Γ = {a + b = 1}
    return 0.5 * (params["a"] + params["b"] - 1.0) ** 2 + 0.0 * batch


PARAMS = {"a": 0.8, "b": 0.6}
BATCHES = {"x": np.array([[1.0], [2.0], [-1.0]]), "y": np.array([[0.5], [1.0], [0.2]])}


def params(dtype=None):
    return {k: jnp.asarray(v, dtype) for k, v in PARAMS.items()}


@contextlib.contextmanager
def x64_disabled():
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", True)


@contextlib.contextmanager
def no_regime_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", AsymptoticRegimeWarning)
        yield


# every flow constructor, with arguments that are valid apart from precision
CONSTRUCTORS = {
    "gd_modified": lambda **kw: flows.gd_modified(loss, 1e-3, **kw),
    "heavy_ball_modified": lambda **kw: flows.heavy_ball_modified(loss, 1e-3, 0.9, **kw),
    "adam_bias": lambda **kw: flows.adam_bias(loss, 1e-3, 0.9, 0.95, 1e-6, **kw),
    "adam_full_batch": lambda **kw: flows.adam_full_batch(loss, 1e-3, 0.9, 0.95, 1e-6, **kw),
    "adam_full_batch order 0": lambda **kw: flows.adam_full_batch(loss, 1e-3, 0.9, 0.95, 1e-6,
                                                                  order=0, **kw),
    "adam_small_eps_limit": lambda **kw: flows.adam_small_eps_limit(loss, 1e-3, 0.9, 0.95, **kw),
    "adam_large_eps_limit": lambda **kw: flows.adam_large_eps_limit(loss, 1e-3, 0.9, 1e6, **kw),
    "adam_minibatch": lambda **kw: flows.adam_minibatch(batch_loss, BATCHES, 1e-3, 0.5, 0.6,
                                                        1e-3, **kw),
    "adam_minibatch order 0": lambda **kw: flows.adam_minibatch(batch_loss, BATCHES, 1e-3, 0.5,
                                                                0.6, 1e-3, order=0, **kw),
    "label_noise_slow_sgd": lambda **kw: flows.label_noise_slow_sgd(slow_loss, 0.0, alpha=0.1,
                                                                    **kw),
    "label_noise_slow_agm_quasi_static": lambda **kw: flows.label_noise_slow_agm_quasi_static(
        slow_loss, 0.0, alpha=0.1, V=diagonal, S=inverse_root(1e-8), **kw),
    "label_noise_slow_agm": lambda **kw: flows.label_noise_slow_agm(
        slow_loss, 0.0, alpha=0.1, V=diagonal, S=inverse_root(1e-8), c=10.0, **kw),
}


# --- float32 input ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_every_flow_constructor_refuses_x64_off_unless_allowed(name):
    build = CONSTRUCTORS[name]
    with x64_disabled():
        with pytest.raises(RuntimeError, match="needs float64.*allow_float32=True"):
            build()
        assert callable(build(allow_float32=True))


def test_solve_global_error_and_solve_steps_refuse_x64_off_but_fit_order_does_not():
    field = flows.gd_modified(loss, 1e-2)
    with x64_disabled():
        p32 = params()
        ts = np.arange(3) * 1e-2
        with pytest.raises(RuntimeError, match="solve needs float64"):
            flows.solve(field, p32, ts)
        with pytest.raises(RuntimeError, match="solve_steps needs float64"):
            flows.solve_steps(lambda h: field, p32, [1e-2], [2])
        stacked = jax.tree.map(lambda x: jnp.stack([x, x]), p32)
        with pytest.raises(RuntimeError, match="global_error needs float64"):
            flows.global_error(stacked, stacked)
        with pytest.raises(RuntimeError, match="project_to_manifold needs float64"):
            flows.project_to_manifold(slow_loss, 0.0, p32)
        # the fit runs in NumPy float64: Python numbers are fine with x64 off
        assert flows.fit_order([0.1, 0.2, 0.4], [1.0, 4.0, 16.0]).order == pytest.approx(2.0)
        # the explicit opt-out computes in float32
        out = flows.solve(field, p32, ts, allow_float32=True, rtol=1e-5, atol=1e-6)
        assert out["a"].dtype == jnp.float32
        assert flows.global_error(stacked, stacked, allow_float32=True) == 0.0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_narrow_float_leaves_are_refused_by_name_and_dtype(dtype):
    field = flows.gd_modified(loss, 1e-2)
    narrow = {"a": jnp.asarray(0.8, dtype), "b": jnp.asarray(0.6)}
    ts = np.arange(3) * 1e-2
    with pytest.raises(TypeError, match=r"params0\['a'\] of dtype " + jnp.dtype(dtype).name):
        flows.solve(field, narrow, ts)
    with pytest.raises(TypeError, match=r"ts of dtype"):
        flows.solve(field, params(), jnp.asarray(ts, dtype))
    with pytest.raises(TypeError, match=r"params0\['a'\]"):
        flows.solve_steps(lambda h: flows.gd_modified(loss, h), narrow, [1e-2], [2])
    good = jax.tree.map(lambda x: jnp.stack([x, x]), params())
    bad = jax.tree.map(lambda x: x.astype(dtype), good)
    with pytest.raises(TypeError, match=r"iterate_params\['b'\]"):
        flows.global_error(good, {"a": good["a"], "b": bad["b"]})
    with pytest.raises(TypeError, match=r"flow_params\['a'\]"):
        flows.global_errors([bad], [good])
    with pytest.raises(TypeError, match=r"errors\[1\]"):
        flows.fit_order([0.1, 0.2, 0.4], [1.0, np.asarray(4.0, dtype), 16.0])
    with pytest.raises(TypeError, match="step_sizes"):
        flows.fit_order(np.asarray([0.1, 0.2, 0.4], dtype), [1.0, 4.0, 16.0])
    with pytest.raises(TypeError, match="errors"):
        flows.decide_order([0.1, 0.2, 0.4], np.asarray([1.0, 4.0, 16.0], dtype), 2.0,
                           points=3, tolerance=0.3)
    with pytest.raises(TypeError, match=r"params\['a'\]"):
        flows.project_to_manifold(slow_loss, 0.0, narrow)
    # opting out computes anyway
    assert flows.global_error(good, bad, allow_float32=True) < 1e-2
    fit = flows.fit_order([0.1, 0.2, 0.4], np.asarray([1.0, 4.0, 16.0], dtype), allow_float32=True)
    assert fit.order == pytest.approx(2.0, abs=1e-2)


def test_float64_integer_complex128_and_python_leaves_pass_complex64_does_not():
    assert flows.fit_order(np.array([1, 2, 4]), [1.0, 4.0, 16.0]).order == pytest.approx(2.0)
    stacked = {"a": jnp.zeros((2, 3)), "n": jnp.zeros((2,), jnp.int32)}
    assert flows.global_error(stacked, stacked) == 0.0
    complex128 = {"z": jnp.zeros((2, 1), jnp.complex128)}
    assert flows.global_error(complex128, complex128) == 0.0
    with pytest.raises(TypeError, match="complex64"):
        flows.global_error({"z": jnp.zeros(2, jnp.complex64)}, {"z": jnp.zeros(2, jnp.complex64)})
    ys = flows.solve(lambda t, y, args: jax.tree.map(jnp.negative, y),
                     {"a": 1.0, "b": np.float64(2.0)}, [0.0, 1.0])
    np.testing.assert_allclose(ys["a"], [1.0, math.exp(-1.0)], rtol=1e-9)


def test_a_float32_comparison_that_gave_a_meaningless_order_is_now_refused():
    # Adam run in float32 against its float64 flow: the O(h²) error drowns in rounding
    h = 4e-3
    flow = flows.solve(flows.adam_full_batch(loss, h, 0.9, 0.95, 1e-6), params(),
                       np.arange(11) * h)
    run32 = jax.tree.map(lambda x: x.astype(jnp.float32), flow)   # as ab.run in float32 gives
    with pytest.raises(TypeError, match=r"iterate_params\['a'\] of dtype float32"):
        flows.global_error(flow, run32)


# --- malformed inputs of the comparisons -------------------------------------------------


@pytest.mark.parametrize("step_sizes, errors, match", [
    ([0.1], [1.0], "at least 2"),
    ([], [], "at least 2"),
    ([0.1, 0.2, 0.4], [1.0, 4.0], "one error per step size"),
    ([0.1, 0.1, 0.4], [1.0, 4.0, 16.0], "distinct"),
    ([0.1, 0.0, 0.4], [1.0, 4.0, 16.0], r"step_sizes\[1\]=0.0"),
    ([0.1, -0.2, 0.4], [1.0, 4.0, 16.0], r"step_sizes\[1\]"),
    ([0.1, float("nan"), 0.4], [1.0, 4.0, 16.0], r"step_sizes\[1\]=nan"),
    ([0.1, float("inf"), 0.4], [1.0, 4.0, 16.0], r"step_sizes\[1\]=inf"),
    ([0.1, 0.2, 0.4], [1.0, 0.0, 16.0], r"errors\[1\]=0.0"),
    ([0.1, 0.2, 0.4], [1.0, -4.0, 16.0], r"errors\[1\]"),
    ([0.1, 0.2, 0.4], [1.0, float("nan"), 16.0], r"errors\[1\]=nan"),
    ([0.1, 0.2, 0.4], [1.0, float("inf"), 16.0], r"errors\[1\]=inf"),
    ([[0.1, 0.2]], [[1.0, 4.0]], "1-d"),
    (["0.1", "0.2"], [1.0, 4.0], "real numbers"),
    ([0.1, None], [1.0, 4.0], "real numbers"),
])
def test_fit_order_refuses_bad_step_sizes_and_errors_by_name(step_sizes, errors, match):
    with pytest.raises(ValueError, match=match):
        flows.fit_order(step_sizes, errors)


def test_fit_order_interval_needs_three_points():
    two = flows.fit_order([0.1, 0.2], [1.0, 4.0])
    assert two.order == pytest.approx(2.0) and two.interval == (-math.inf, math.inf)
    three = flows.fit_order([0.1, 0.2, 0.4], [1.0, 4.1, 16.0])
    assert all(math.isfinite(x) for x in three.interval)
    with pytest.raises(ValueError, match="at least 2"):
        flows.asymptotic_fit([0.1, 0.2, 0.4], [1.0, 4.0, 16.0], 1)


def stacked(n, **shapes):
    return {k: jnp.zeros((n,) + s) for k, s in shapes.items()}


@pytest.mark.parametrize("flow, iterates, match", [
    (stacked(11, a=(), b=()), stacked(10, a=(), b=()), r"\[11\] in the flow and \[10\]"),
    (stacked(1, a=(), b=()), stacked(10, a=(), b=()), "same number of saved points"),
    ({"a": jnp.zeros(5), "b": jnp.zeros(4)}, stacked(5, a=(), b=()), "in every leaf"),
    (stacked(5, a=(), b=()), stacked(5, a=(), c=()), "same structure"),
    (stacked(5, a=(2,)), stacked(5, a=(3,)), r"\['a'\] has shape \(2,\) in the flow"),
    (stacked(5, a=(2,)), stacked(5, a=(1,)), r"\['a'\] has shape"),
    ({"a": jnp.zeros(())}, {"a": jnp.zeros(())}, "leading axis"),
    ({}, {}, "at least one parameter leaf"),
])
def test_global_error_refuses_unpaired_pytrees(flow, iterates, match):
    with pytest.raises(ValueError, match=match):
        flows.global_error(flow, iterates)


def test_global_errors_needs_one_iterate_list_per_flow():
    with pytest.raises(ValueError, match="2 flows and 1 iterate"):
        flows.global_errors([stacked(3, a=())] * 2, [stacked(3, a=())])


@pytest.mark.parametrize("ts, t0, match", [
    ([0.0, float("nan"), 0.2], None, r"ts must be finite, got ts\[1\]=nan"),
    ([0.0, 0.1, float("inf")], None, r"ts\[2\]=inf"),
    ([0.0, 0.2, 0.1], None, r"strictly increasing, got ts\[1\]=0.2 and ts\[2\]=0.1"),
    ([0.0, 0.1, 0.1], None, "strictly increasing"),
    ([[0.0, 0.1]], None, "1-d"),
    ([], None, "1-d"),
    ([0.0, 0.1], 0.05, "t0 must be finite and at most"),
    ([0.0, 0.1], float("nan"), "t0 must be finite"),
])
def test_solve_refuses_a_bad_time_grid(ts, t0, match):
    with pytest.raises(ValueError, match=match):
        flows.solve(lambda t, y, args: -y, params(), np.asarray(ts, float), t0=t0)


@pytest.mark.parametrize("step_sizes, num_steps, match", [
    ([float("nan")], [3], r"step_sizes\[0\]"),
    (["0.1"], [3], r"step_sizes\[0\] must be a real number"),
    ([-0.1], [3], r"step_sizes\[0\]"),
    ([0.1], [2.5], r"num_steps\[0\] must be a positive integer"),
    ([0.1], [0], r"num_steps\[0\]"),
    ([0.1], [True], r"num_steps\[0\]"),
    ([0.1, 0.2], [3], "equal length"),
])
def test_solve_steps_refuses_bad_step_sizes_and_counts(step_sizes, num_steps, match):
    with pytest.raises(ValueError, match=match):
        flows.solve_steps(lambda h: flows.gd_modified(loss, h), params(), step_sizes, num_steps)


# --- the asymptotic regime ---------------------------------------------------------------


def quadratic(params):
    return 0.5 * 3.0 * params["x"] ** 2


def test_first_order_ratio_matches_closed_forms_on_a_quadratic():
    # E = (λ/2)x²: GD's correction/leading = hλ/2, heavy ball's h(1+β)λ/(2(1−β)²)
    p = {"x": jnp.asarray(0.7)}
    h, beta, lam = 0.01, 0.8, 3.0
    assert float(first_order_ratio(flows.gd_modified(quadratic, h), p)) == pytest.approx(
        h * lam / 2, rel=1e-12)
    assert float(first_order_ratio(flows.heavy_ball_modified(quadratic, h, beta), p)) == \
        pytest.approx(h * (1 + beta) * lam / (2 * (1 - beta) ** 2), rel=1e-12)
    # the terms add up to the field
    field = flows.adam_full_batch(loss, 0.01, 0.9, 0.999, 1e-8)
    leading, correction = field.terms(0.0, params())
    total = jax.tree.map(jnp.add, leading, correction)
    for key in PARAMS:
        assert float(total[key]) == pytest.approx(float(field(0.0, params())[key]), rel=1e-12)
    # fields without a first-order term have no ratio, a stationary start has ratio 0
    assert first_order_ratio(flows.adam_full_batch(loss, 0.01, 0.9, 0.999, 1e-8, order=0),
                             params()) is None
    assert float(first_order_ratio(flows.gd_modified(quadratic, h), {"x": jnp.asarray(0.0)})) == 0.0


def test_the_reported_case_warns_and_a_small_step_does_not():
    # h = 1e-2, β = 0.9, ρ = 0.999: h·ρ/(1−ρ) ≈ 10, the correction is ~10× the leading term
    ts = np.arange(3) * 1e-2
    with pytest.warns(AsymptoticRegimeWarning, match=r"adam_full_batch: the first-order term is"):
        flows.solve(flows.adam_full_batch(loss, 1e-2, 0.9, 0.999, 1e-8), params(), ts)
    with no_regime_warning():
        flows.solve(flows.adam_full_batch(loss, 1e-3, 0.9, 0.95, 1e-8), params(), ts / 10)
        flows.solve(flows.adam_full_batch(loss, 1e-2, 0.9, 0.999, 1e-8, order=0), params(), ts)


@pytest.mark.parametrize("build", [
    lambda h: flows.gd_modified(quadratic, h),
    lambda h: flows.heavy_ball_modified(quadratic, h, 0.9),
    lambda h: flows.adam_large_eps_limit(quadratic, h * 1e3, 0.9, 1e6),
])
def test_every_first_order_flow_warns_outside_and_not_inside(build):
    p = {"x": jnp.asarray(0.7)}
    with pytest.warns(AsymptoticRegimeWarning):
        flows.solve(build(0.5), p, [0.0, 0.5])
    assert float(first_order_ratio(build(1e-3), p)) < 0.5   # what solve checks


def test_large_eps_adam_with_a_huge_h_but_a_small_step_is_inside_the_regime():
    # ε = 1e12: Adam moves at speed |∇E|/√ε; h = 1e3 is a step of 1e-3 in GD's units
    p = {"x": jnp.asarray(0.7)}
    with no_regime_warning():
        flows.solve(flows.adam_large_eps_limit(quadratic, 1e3, 0.9, 1e12), p, [0.0, 1e4])


def test_the_minibatch_flow_is_checked_with_its_memory_full():
    field = flows.adam_minibatch(batch_loss, BATCHES, 5e-2, 0.9, 0.999, 1e-2, num_steps=6)
    # at t = 0 the memory is empty (no L, P terms) and the ratio looks small; at t = Nh it is not
    assert float(first_order_ratio(field, params(), 0.0)) < 0.5 < \
        float(first_order_ratio(field, params(), 6 * 5e-2))
    with pytest.warns(AsymptoticRegimeWarning, match="adam_minibatch"):
        flows.solve(field, params(), np.arange(7) * 5e-2, rtol=1e-6, atol=1e-8)


def test_solve_steps_warns_for_the_members_outside_only_and_keeps_its_results():
    def make_field(h, order):
        return flows.switch([flows.adam_full_batch(loss, h, 0.9, 0.999, 1e-8, order=0),
                             flows.adam_full_batch(loss, h, 0.9, 0.999, 1e-8)], order)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solutions = flows.solve_steps(make_field, params(), [1e-2, 1e-5, 1e-2], [4, 4, 4],
                                      hyper={"order": [1, 1, 0]})
    messages = [str(w.message) for w in caught if w.category is AsymptoticRegimeWarning]
    assert len(messages) == 1 and "h=0.01, order=1" in messages[0]
    # the same solution as solve (which warns too: the field is concrete there)
    with pytest.warns(AsymptoticRegimeWarning):
        direct = flows.solve(make_field(1e-2, 1), params(), np.arange(5) * 1e-2)
    for key in PARAMS:
        np.testing.assert_allclose(solutions[0][key], direct[key], rtol=1e-9)


def test_traced_hyperparameters_never_warn():
    ts = np.arange(5) * 1e-2

    def solve_at(h):   # h = 1e-2 is outside the regime, but traced: no check
        return flows.solve(flows.adam_full_batch(loss, h, 0.9, 0.999, 1e-8), params(), ts)

    with no_regime_warning():
        out = jax.vmap(solve_at)(jnp.asarray([1e-2, 1e-3]))
        assert out["a"].shape == (2, 5) and bool(jnp.all(jnp.isfinite(out["a"])))
        flows.warn_outside_regime(
            jax.jit(lambda h: first_order_ratio(flows.gd_modified(loss, h), params()))(0.5) * 0,
            "a concrete ratio of zero")


def test_slow_odes_and_order_zero_flows_carry_no_terms_and_never_warn():
    zeta = {"a": jnp.asarray(0.3), "b": jnp.asarray(0.7)}
    for name in ("label_noise_slow_sgd", "label_noise_slow_agm_quasi_static",
                 "adam_full_batch order 0", "adam_minibatch order 0"):
        start = zeta if name.startswith("label") else params()
        assert first_order_ratio(CONSTRUCTORS[name](), start) is None
    with no_regime_warning():
        flows.solve(CONSTRUCTORS["label_noise_slow_sgd"](), zeta, [0.0, 1e-3])
