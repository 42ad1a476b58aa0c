"""How closely a flow tracks an optimizer's iterates, and at what order in h.

Global error sup_n ‖θ(nh) − θ⁽ⁿ⁾‖∞ over the saved steps (:func:`global_error`); the order p of
error ≈ C·hᵖ is the least-squares slope of log error against log h with a 95% interval
(:func:`fit_order`). An order claim (CKS (2.2)–(2.3), Theorem 3.1, Example 2.3) fits the slope
on the :data:`ASYMPTOTIC_POINTS` smallest step sizes (the asymptotic regime) and holds when it
is within :data:`SLOPE_TOLERANCE` of the expected order (:func:`decide_order`).
:func:`iterates_per_step_size` and :func:`step_counts` give the iterates such a study compares
with: one :func:`adabias.sweep` over the step sizes, N = T/h steps each.

All of these refuse float32 input (DESIGN §2; keyword-only ``allow_float32=True`` opts out):
:func:`global_error` a float32 leaf in either pytree or x64 off; :func:`fit_order` step
sizes or errors held as float32 (it fits in NumPy, so x64 is not consulted).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from adabias._validation import require_float64
from adabias.engine import sweep

PyTree = Any

__all__ = ["ASYMPTOTIC_POINTS", "SLOPE_TOLERANCE", "OrderFit", "fit_order", "asymptotic_fit",
           "decide_order", "order_reason", "global_error", "global_errors", "step_counts",
           "iterates_per_step_size"]

#: Order claims fit the slope on this many smallest step sizes …
ASYMPTOTIC_POINTS = 4
#: … and hold when it is within this tolerance of the expected order.
SLOPE_TOLERANCE = 0.3


def global_error(flow_params: PyTree, iterate_params: PyTree, *,
                 allow_float32: bool = False) -> float:
    """sup_n ‖θ(t_n) − θ⁽ⁿ⁾‖∞ over the saved points (both with a leading step axis).

    The two pytrees must have the same structure, the same leaf shapes and the same number
    of saved points (no broadcasting), and be float64 (``allow_float32=True`` opts out).
    """
    require_float64("global_error", allow_float32=allow_float32, flow_params=flow_params,
                    iterate_params=iterate_params)
    _check_paired(flow_params, iterate_params)
    flat = jax.vmap(lambda tree: ravel_pytree(tree)[0])
    difference = flat(flow_params) - flat(iterate_params)
    return float(jnp.max(jnp.abs(difference)))


def _check_paired(flow_params: PyTree, iterate_params: PyTree) -> None:
    flow_def, iterate_def = jax.tree.structure(flow_params), jax.tree.structure(iterate_params)
    if flow_def != iterate_def:
        raise ValueError("global_error needs flow and iterates of the same structure, got "
                         f"{flow_def} and {iterate_def}")
    paths = jax.tree_util.tree_flatten_with_path(flow_params)[0]
    if not paths:
        raise ValueError("global_error needs at least one parameter leaf, got none")
    flow_points, iterate_points = set(), set()
    for (path, a), b in zip(paths, jax.tree.leaves(iterate_params)):
        where = jax.tree_util.keystr(path) or "the leaf"
        if np.ndim(a) == 0 or np.ndim(b) == 0:
            raise ValueError(f"global_error needs a leading axis of saved points, got a scalar "
                             f"at {where}")
        if np.shape(a)[1:] != np.shape(b)[1:]:
            raise ValueError(f"global_error: {where} has shape {np.shape(a)[1:]} in the flow "
                             f"and {np.shape(b)[1:]} in the iterates (after the step axis)")
        flow_points.add(np.shape(a)[0])
        iterate_points.add(np.shape(b)[0])
    if len(flow_points) != 1 or flow_points != iterate_points:
        raise ValueError("global_error needs the same number of saved points in the flow and "
                         f"the iterates (in every leaf), got {sorted(flow_points)} in the flow "
                         f"and {sorted(iterate_points)} in the iterates")


def global_errors(flow_solutions: Sequence[PyTree], iterate_list: Sequence[PyTree], *,
                  allow_float32: bool = False) -> np.ndarray:
    """:func:`global_error` for each step size (flows and iterates paired in order)."""
    if len(flow_solutions) != len(iterate_list):
        raise ValueError(f"global_errors needs one iterate list per flow, got "
                         f"{len(flow_solutions)} flows and {len(iterate_list)} iterate lists")
    return np.array([global_error(f, it, allow_float32=allow_float32)
                     for f, it in zip(flow_solutions, iterate_list)])


class OrderFit(NamedTuple):
    """A fitted convergence order: error ≈ C·h^order.

    ``interval`` is a 95% confidence interval from the least-squares slope's standard
    error (Student t with len(h) − 2 degrees of freedom); ``local`` are the slopes
    between consecutive h.
    """

    order: float
    interval: tuple[float, float]
    local: tuple[float, ...]
    intercept: float


# 97.5% quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def fit_order(step_sizes: Sequence[float], errors: Sequence[float], *,
              allow_float32: bool = False) -> OrderFit:
    """Least-squares slope of log(error) against log(h), with a 95% interval.

    Needs at least 2 pairs (h, error) with distinct positive finite h and positive finite
    errors, as float64 or Python numbers (``allow_float32=True`` opts out). With 2 pairs the
    line passes through both points: no residual is left to estimate the slope's error, so
    the interval is (−inf, inf); an interval needs 3 or more.
    """
    require_float64("fit_order", allow_float32=allow_float32, needs_x64=False,
                    step_sizes=step_sizes, errors=errors)
    h, e = _as_vector("step_sizes", step_sizes), _as_vector("errors", errors)
    if h.shape != e.shape:
        raise ValueError(f"fit_order needs one error per step size, got {h.size} step sizes "
                         f"and {e.size} errors")
    if h.size < 2:
        raise ValueError(f"fit_order needs at least 2 (h, error) pairs to fit a slope (3 for a "
                         f"95% interval), got {h.size}")
    for name, values in (("step_sizes", h), ("errors", e)):
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name} must be positive and finite, got {name}[{i}]={float(values[i])!r}")
    if np.unique(h).size != h.size:
        raise ValueError(f"step_sizes must be distinct, got {h.tolist()}")
    log_h, log_e = np.log(h), np.log(e)
    slope, intercept = np.polyfit(log_h, log_e, 1)
    local = tuple(float(v) for v in np.diff(log_e) / np.diff(log_h))
    dof = log_h.size - 2
    if dof > 0:
        residuals = log_e - (slope * log_h + intercept)
        stderr = math.sqrt(residuals @ residuals / dof / np.sum((log_h - log_h.mean()) ** 2))
        quantile = _T975[dof - 1] if dof <= len(_T975) else 1.96
        interval = (float(slope - quantile * stderr), float(slope + quantile * stderr))
    else:
        interval = (float("-inf"), float("inf"))
    return OrderFit(float(slope), interval, local, float(intercept))


def _as_vector(name: str, values: Sequence[float]) -> np.ndarray:
    """``values`` as a 1-d float64 array of real numbers."""
    array = np.asarray(values)
    if array.ndim != 1 or not (jnp.issubdtype(array.dtype, jnp.integer)
                               or jnp.issubdtype(array.dtype, jnp.floating)):
        raise ValueError(f"{name} must be a 1-d sequence of real numbers, got {values!r}")
    return array.astype(float)


def asymptotic_fit(step_sizes: Sequence[float], errors: Sequence[float], points: int, *,
                   allow_float32: bool = False) -> OrderFit:
    """The order fitted on the ``points`` smallest step sizes (the asymptotic regime)."""
    order = np.argsort(step_sizes)[:points]
    return fit_order(np.asarray(step_sizes)[order], np.asarray(errors)[order],
                     allow_float32=allow_float32)


def decide_order(step_sizes: Sequence[float], errors: Sequence[float], expected: float, *,
                 points: int, tolerance: float, allow_float32: bool = False) -> tuple[bool, dict]:
    """Held when the slope fitted on the ``points`` smallest step sizes is within
    ``tolerance`` of ``expected``; returns (held, the numbers it was decided on), the three
    the decision rests on first (fitted order, expected order, tolerance); :func:`order_reason`
    says in words why it did not hold."""
    fit = asymptotic_fit(step_sizes, errors, points, allow_float32=allow_float32)
    numbers = {"fitted_order": fit.order, "expected_order": expected, "tolerance": tolerance,
               "interval_95": list(fit.interval),
               "fit_step_sizes": sorted(step_sizes)[:points],
               "local_slopes_all_h": list(fit_order(step_sizes, errors,
                                                    allow_float32=allow_float32).local),
               "step_sizes": list(step_sizes), "errors": list(errors)}
    return bool(abs(fit.order - expected) < tolerance), numbers


def order_reason(numbers: Mapping[str, Any], step: str = "h") -> str:
    """Why an order decision of :func:`decide_order` did not hold, from its ``numbers``
    (``step`` names the step-size variable, e.g. ``"h/√ε"``)."""
    low, high = numbers["interval_95"]
    return (f"the slope fitted on the {len(numbers['fit_step_sizes'])} smallest {step} is "
            f"{numbers['fitted_order']:.3f}, outside {numbers['expected_order']:g} ± "
            f"{numbers['tolerance']:g} (95 % interval {low:.2f} to {high:.2f})")


def step_counts(step_sizes: Sequence[float], horizon: float, multiple: int = 1) -> list[int]:
    """N = T/h for each h, required to be a whole number (a multiple of ``multiple``: whole
    epochs of a cyclic mini-batch run)."""
    counts = []
    for h in step_sizes:
        n = int(round(horizon / h))
        if n < 1 or abs(n * h - horizon) > 1e-9 * horizon or n % multiple:
            raise ValueError(f"horizon/step_size must be a positive multiple of {multiple}, got "
                             f"horizon={horizon!r}, step_size={h!r}")
        counts.append(n)
    return counts


def iterates_per_step_size(make_optimizer: Callable[..., Any], loss_fn: Callable,
                           params0: PyTree, step_sizes: Sequence[float],
                           num_steps: Sequence[int], *,
                           grid: Mapping[str, Sequence[float]] = {},
                           batches: Optional[PyTree] = None) -> list[list[PyTree]]:
    """θ⁽ⁿ⁾, n = 0 … N_i, of ``make_optimizer(learning_rate=h_i, **point)`` for every h_i and
    every point of ``grid`` (further traced hyperparameters, e.g. ``{"beta1": [0.9, 0.0]}``):
    one :func:`adabias.sweep` (compiled once, max N_i steps each). Returns one list over the
    step sizes per point of ``grid`` (in ``itertools.product`` order; one list when empty)."""
    full_grid = {"learning_rate": list(step_sizes), **{k: list(v) for k, v in grid.items()}}
    per = math.prod(len(v) for v in grid.values())
    result = sweep(make_optimizer, loss_fn, params0, max(num_steps), grid=full_grid,
                   batches=batches)
    return [[jax.tree.map(lambda x: x[i * per + j, : n + 1], result.trajectory.params)
             for i, n in enumerate(num_steps)] for j in range(per)]
