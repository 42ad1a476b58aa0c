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
    return _diffeqsolve(field, params0, t0, float(ts[-1]), ts, time_dependent=time_dependent,
                        rtol=rtol, atol=atol, jump_ts=jump_ts, max_steps=max_steps, solver=solver)


def _diffeqsolve(field, params0, t0, t1, ts, *, time_dependent, rtol, atol, jump_ts, max_steps,
                 solver=None) -> PyTree:
    """The one diffrax call behind :func:`solve` and :func:`solve_steps` (Dopri8 + PID)."""
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
        t1=t1,
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


def solve_steps(
    make_field: Callable[..., Callable],
    params0: PyTree,
    step_sizes: Sequence[float],
    num_steps: Sequence[int],
    *,
    hyper: Optional[dict] = None,
    piecewise: bool = False,
    sequential: bool = False,
    rtol: float = 1e-11,
    atol: float = 1e-13,
    max_steps: int = 1_000_000,
) -> list:
    """θ(n·h_i), n = 0 … N_i, of the flow ``make_field(h_i, **hyper_i)`` for every h_i,
    compiled once for all step sizes.

    :func:`solve` compiles once per step size (h and the grid are Python constants); here
    h, the horizon N_i·h_i and ``hyper`` (name -> one value per step size, e.g. β, ρ, ε)
    are traced, the saving grid is padded to max N_i + 1 points (t_n = min(n, N_i)·h_i) and
    the solves run as one ``vmap`` (or, with ``sequential=True``, one after another in a
    ``lax.map``: better when the step counts differ a lot, e.g. piecewise fields, where
    the solver steps at least once per piece, or when ``make_field`` branches on a traced
    hyperparameter, since ``vmap`` evaluates every branch). ``make_field`` must accept
    traced values (the fields of :mod:`adabias.flows` do, except that the window of
    :func:`adam_minibatch` needs concrete β, ρ: keep them out of ``hyper``).
    ``piecewise=True`` passes the grid
    t_n = fl(n·h_i) as ``jump_ts`` (Theorem 3.1's pieces). Same solver and tolerances
    as :func:`solve`.

    Returns:
      One pytree per step size, leading axis N_i + 1 (the times n·h_i, n = 0 … N_i).
    """
    step_sizes = [float(h) for h in step_sizes]
    num_steps = [int(n) for n in num_steps]
    if not step_sizes or len(step_sizes) != len(num_steps):
        raise ValueError("step_sizes and num_steps must be non-empty and of equal length, got "
                         f"{len(step_sizes)} and {len(num_steps)}")
    if min(step_sizes) <= 0 or min(num_steps) < 1:
        raise ValueError("step_sizes and num_steps must be positive, got "
                         f"step_sizes={step_sizes}, num_steps={num_steps}")
    hyper = {} if hyper is None else {k: jnp.asarray(v) for k, v in hyper.items()}
    for name, values in hyper.items():
        if values.shape != (len(step_sizes),):
            raise ValueError(f"hyper[{name!r}] needs one value per step size, got shape "
                             f"{values.shape}")
    longest = max(num_steps)
    grid = jnp.arange(longest + 1)

    def one(h, n, point):
        return _diffeqsolve(make_field(h, **point), params0, jnp.zeros_like(h), n * h,
                            jnp.minimum(grid, n) * h, time_dependent=None, rtol=rtol, atol=atol,
                            jump_ts=grid * h if piecewise else None, max_steps=max_steps)

    dtype = jnp.result_type(float)
    arguments = (jnp.asarray(step_sizes, dtype), jnp.asarray(num_steps), hyper)
    if sequential:
        ys = jax.jit(lambda args: jax.lax.map(lambda a: one(*a), args))(arguments)
    else:
        ys = jax.jit(jax.vmap(one))(*arguments)
    return [jax.tree.map(lambda y: y[i, : n + 1], ys) for i, n in enumerate(num_steps)]
