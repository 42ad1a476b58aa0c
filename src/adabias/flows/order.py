"""How closely a flow tracks an optimizer's iterates, and at what order in h.

Global error sup_n ‖θ(nh) − θ⁽ⁿ⁾‖∞ over the saved steps (:func:`global_error`); the order p of
error ≈ C·hᵖ is the least-squares slope of log error against log h with a 95% interval
(:func:`fit_order`). An order claim (CKS (2.2)–(2.3), Theorem 3.1, Example 2.3) fits the slope
on the :data:`ASYMPTOTIC_POINTS` smallest step sizes (the asymptotic regime) and holds when it
is within :data:`SLOPE_TOLERANCE` of the expected order (:func:`decide_order`).
:func:`iterates_per_step_size` and :func:`step_counts` give the iterates such a study compares
with: one :func:`adabias.sweep` over the step sizes, N = T/h steps each.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from adabias.engine import sweep

PyTree = Any

__all__ = ["ASYMPTOTIC_POINTS", "SLOPE_TOLERANCE", "OrderFit", "fit_order", "asymptotic_fit",
           "decide_order", "global_error", "global_errors", "step_counts",
           "iterates_per_step_size"]

#: Order claims fit the slope on this many smallest step sizes …
ASYMPTOTIC_POINTS = 4
#: … and hold when it is within this tolerance of the expected order.
SLOPE_TOLERANCE = 0.3


def global_error(flow_params: PyTree, iterate_params: PyTree) -> float:
    """sup_n ‖θ(t_n) − θ⁽ⁿ⁾‖∞ over the saved points (both with a leading step axis)."""
    flat = jax.vmap(lambda tree: ravel_pytree(tree)[0])
    difference = flat(flow_params) - flat(iterate_params)
    return float(jnp.max(jnp.abs(difference)))


def global_errors(flow_solutions: Sequence[PyTree], iterate_list: Sequence[PyTree]) -> np.ndarray:
    """:func:`global_error` for each step size (flows and iterates paired in order)."""
    return np.array([global_error(f, it) for f, it in zip(flow_solutions, iterate_list)])


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


def fit_order(step_sizes: Sequence[float], errors: Sequence[float]) -> OrderFit:
    """Least-squares slope of log(error) against log(h), with a 95% interval."""
    log_h = np.log(np.asarray(step_sizes, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):  # rejected just below
        log_e = np.log(np.asarray(errors, dtype=float))
    if log_h.shape != log_e.shape or log_h.size < 2:
        raise ValueError("fit_order needs at least two (h, error) pairs of equal length")
    if not np.all(np.isfinite(log_e)):
        raise ValueError(f"errors must be positive and finite, got {list(errors)}")
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


def asymptotic_fit(step_sizes: Sequence[float], errors: Sequence[float],
                   points: int) -> OrderFit:
    """The order fitted on the ``points`` smallest step sizes (the asymptotic regime)."""
    order = np.argsort(step_sizes)[:points]
    return fit_order(np.asarray(step_sizes)[order], np.asarray(errors)[order])


def decide_order(step_sizes: Sequence[float], errors: Sequence[float], expected: float, *,
                 points: int, tolerance: float) -> tuple[bool, dict]:
    """Held when the slope fitted on the ``points`` smallest step sizes is within
    ``tolerance`` of ``expected``; returns (held, the numbers it was decided on)."""
    fit = asymptotic_fit(step_sizes, errors, points)
    numbers = {"expected_order": expected, "fitted_order": fit.order,
               "interval_95": list(fit.interval),
               "fit_step_sizes": sorted(step_sizes)[:points], "tolerance": tolerance,
               "local_slopes_all_h": list(fit_order(step_sizes, errors).local),
               "step_sizes": list(step_sizes), "errors": list(errors)}
    return bool(abs(fit.order - expected) < tolerance), numbers


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
