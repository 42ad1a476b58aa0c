"""Solving a flow with diffrax: one field, one step size or many.

A field is diffrax's ``f(t, y, args) -> dy/dt`` (:mod:`adabias.flows.vector_field`).
:func:`solve` returns θ(t) at each time of ``ts``; a
:class:`~adabias.flows.vector_field.PiecewiseField` (CKS Theorem 3.1) brings its jump times
t_n = fl(n·h). :func:`solve_steps` solves a family of flows, one per step size h_i (and traced
hyperparameters), as one compiled program (:func:`~adabias.flows.vector_field.switch` lets
different flows share it).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

import diffrax
import jax
import jax.numpy as jnp

from adabias.flows.vector_field import Field, PiecewiseField

PyTree = Any

__all__ = ["solve", "solve_steps"]


def solve(
    field: Field,
    params0: PyTree,
    ts: Sequence[float] | jax.Array,
    *,
    t0: Optional[float] = None,
    rtol: float = 1e-11,
    atol: float = 1e-13,
    max_steps: int = 1_000_000,
    solver: Optional[diffrax.AbstractSolver] = None,
) -> PyTree:
    """Integrate θ̇ = f(t, θ) from θ(t0) = params0 (t0 = ts[0] by default); return θ at every
    t in ``ts``.

    The default Dopri8 with tolerances 1e-11/1e-13 keeps the solver's error far below
    the O(h²) effects the flows are meant to show (use float64). For a
    :class:`~adabias.flows.vector_field.PiecewiseField` the grid t_n = fl(n·h) inside [t0, t1] is
    the controller's ``jump_ts``: it stops at prevbefore(t_n) (on piece n−1) and restarts
    after t_n.

    Returns:
      A pytree like ``params0`` with a leading axis of len(ts).
    """
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"ts must be a 1-d array of times, got shape {ts.shape}")
    t0 = float(ts[0]) if t0 is None else float(t0)
    t1 = float(ts[-1])
    jump_ts = field.jump_times(t0, t1) if isinstance(field, PiecewiseField) else None
    return _diffeqsolve(field, params0, t0, t1, ts, rtol=rtol, atol=atol, jump_ts=jump_ts,
                        max_steps=max_steps, solver=solver)


def _diffeqsolve(field, params0, t0, t1, ts, *, rtol, atol, jump_ts, max_steps,
                 solver=None) -> PyTree:
    """The one diffrax call behind :func:`solve` and :func:`solve_steps` (Dopri8 + PID)."""
    controller = diffrax.PIDController(rtol=rtol, atol=atol, jump_ts=jump_ts)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
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


def solve_steps(
    make_field: Callable[..., Field],
    params0: PyTree,
    step_sizes: Sequence[float],
    num_steps: Sequence[int],
    *,
    hyper: Mapping[str, Sequence[float]] = {},
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
    :func:`adam_minibatch` needs concrete β, ρ: keep them out of ``hyper``). When it returns
    a :class:`~adabias.flows.vector_field.PiecewiseField`, the grid t_n = fl(n·h) (n ≤ max N_i)
    is its ``jump_ts``. Same solver and tolerances as :func:`solve`.

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
    hyper = {k: jnp.asarray(v) for k, v in hyper.items()}
    for name, values in hyper.items():
        if values.shape != (len(step_sizes),):
            raise ValueError(f"hyper[{name!r}] needs one value per step size, got shape "
                             f"{values.shape}")
    longest = max(num_steps)
    grid = jnp.arange(longest + 1)

    def one(h, n, point):
        field = make_field(h, **point)
        jump_ts = grid * field.step_size if isinstance(field, PiecewiseField) else None
        return _diffeqsolve(field, params0, jnp.zeros_like(h), n * h, jnp.minimum(grid, n) * h,
                            rtol=rtol, atol=atol, jump_ts=jump_ts, max_steps=max_steps)

    dtype = jnp.result_type(float)
    arguments = (jnp.asarray(step_sizes, dtype), jnp.asarray(num_steps), hyper)
    if sequential:
        ys = jax.jit(lambda args: jax.lax.map(lambda a: one(*a), args))(arguments)
    else:
        ys = jax.jit(jax.vmap(one))(*arguments)
    return [jax.tree.map(lambda y: y[i, : n + 1], ys) for i, n in enumerate(num_steps)]
