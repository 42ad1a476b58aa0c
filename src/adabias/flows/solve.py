"""Solving a flow with diffrax and measuring how closely it tracks discrete iterates.

A *field* is ``f(params) -> dparams/dt`` (autonomous) or ``f(t, params)`` (piecewise in
t, e.g. CKS Theorem 3.1). :func:`solve` returns the params at each time of ``ts``;
:func:`global_error` is sup over saved steps n of ‖θ(t_n) − θ⁽ⁿ⁾‖∞; :func:`fit_order`
fits log error = p·log h + c over a range of h and gives p with a confidence interval.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

PyTree = Any


def _is_time_dependent(field: Callable) -> bool:
    try:
        parameters = inspect.signature(field).parameters.values()
    except (TypeError, ValueError):  # builtins, partials without signature
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                  and p.default is p.empty]
    return len(positional) >= 2


def solve(
    field: Callable,
    params0: PyTree,
    ts: Sequence[float] | jax.Array,
    *,
    t0: Optional[float] = None,
    time_dependent: Optional[bool] = None,
    rtol: float = 1e-11,
    atol: float = 1e-13,
    jump_ts: Optional[Sequence[float] | jax.Array] = None,
    max_steps: int = 1_000_000,
    solver: Optional[diffrax.AbstractSolver] = None,
) -> PyTree:
    """Integrate θ̇ = f(θ) (or f(t, θ)) from θ(t0) = params0; return θ at every t in ``ts``.

    The default Dopri8 with tolerances 1e-11/1e-13 keeps the solver's error far below
    the O(h²) effects the flows are meant to show (use float64). ``jump_ts`` names the
    times where a piecewise field jumps (t = nh for Theorem 3.1), so that the step-size
    controller restarts there instead of stepping across a discontinuity.

    Returns:
      A pytree like ``params0`` with a leading axis of len(ts).
    """
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"ts must be a 1-d array of times, got shape {ts.shape}")
    t0 = float(ts[0]) if t0 is None else float(t0)
    if time_dependent is None:
        time_dependent = _is_time_dependent(field)
    vector_field = (lambda t, y, args: field(t, y)) if time_dependent else (lambda t, y, args: field(y))
    controller = diffrax.PIDController(
        rtol=rtol, atol=atol, jump_ts=None if jump_ts is None else jnp.asarray(jump_ts)
    )
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        diffrax.Dopri8() if solver is None else solver,
        t0=t0,
        t1=float(ts[-1]),
        dt0=None,
        y0=params0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        max_steps=max_steps,
    )
    return solution.ys


def global_error(flow_params: PyTree, iterate_params: PyTree) -> float:
    """sup_n ‖θ(t_n) − θ⁽ⁿ⁾‖∞ over the saved points (both with a leading step axis)."""
    flat = jax.vmap(lambda tree: ravel_pytree(tree)[0])
    difference = flat(flow_params) - flat(iterate_params)
    return float(jnp.max(jnp.abs(difference)))


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
