"""Solving a flow with diffrax: one field, one step size or many.

A field is diffrax's ``f(t, y, args) -> dy/dt`` (:mod:`adabias.flows.vector_field`).
:func:`solve` returns θ(t) at each time of ``ts``; a
:class:`~adabias.flows.vector_field.PiecewiseField` (CKS Theorem 3.1) brings its jump times
t_n = fl(n·h). :func:`solve_steps` solves a family of flows, one per step size h_i (and traced
hyperparameters), as one compiled program (:func:`~adabias.flows.vector_field.switch` lets
different flows share it).

Both refuse float32 input (x64 off, or float32 leaves in ``params0``; keyword-only
``allow_float32=True`` opts out) and warn (:class:`~adabias.flows.regime.AsymptoticRegimeWarning`)
when a modified flow starts outside its asymptotic regime (:mod:`adabias.flows.regime`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional, Sequence

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from adabias._validation import check_positive, is_concrete, require_float64
from adabias.flows.regime import first_order_ratio, warn_outside_regime
from adabias.flows.vector_field import Field, PiecewiseField, terms_of

PyTree = Any

__all__ = ["solve", "solve_steps"]

_first_order_ratio = jax.jit(first_order_ratio)


def solve(
    field: Field,
    params0: PyTree,
    ts: Sequence[float] | jax.Array,
    *,
    t0: Optional[float] = None,
    rtol: float = 1e-11,
    atol: float = 1e-13,
    max_steps: int = 1_000_000,
    solver: diffrax.AbstractSolver = diffrax.Dopri8(),
    allow_float32: bool = False,
) -> PyTree:
    """Integrate θ̇ = f(t, θ) from θ(t0) = params0 (t0 = ts[0] by default); return θ at every
    t in ``ts``.

    The default Dopri8 with tolerances 1e-11/1e-13 keeps the solver's error far below
    the O(h²) effects the flows are meant to show (use float64). For a
    :class:`~adabias.flows.vector_field.PiecewiseField` the grid t_n = fl(n·h) inside [t0, t1] is
    the controller's ``jump_ts``: it stops at prevbefore(t_n) (on piece n−1) and restarts
    after t_n.

    Refuses (DESIGN §2) float32 input: ``jax_enable_x64`` off, or a floating leaf of
    ``params0`` or ``ts`` coarser than float64 (``allow_float32=True`` opts out); and a time
    grid that is not finite and strictly increasing, or a ``t0`` after ts[0]. Warns
    (:class:`~adabias.flows.regime.AsymptoticRegimeWarning`) when ``field`` is a modified flow
    whose first-order term exceeds :data:`~adabias.flows.regime.REGIME_THRESHOLD` = 0.5 of
    its leading term at ``params0`` (evaluated at time ts[-1]).

    Returns:
      A pytree like ``params0`` with a leading axis of len(ts).
    """
    require_float64("solve", allow_float32=allow_float32, params0=params0, ts=ts)
    ts = jnp.asarray(ts)
    t0, t1 = _check_time_grid(ts, t0)
    inner = field.vector_field if isinstance(field, PiecewiseField) else field
    # compiled once per field structure, like the solve (a pytree: a new h is a new leaf)
    ratio = None if terms_of(field) is None else _first_order_ratio(field, params0, t1)
    warn_outside_regime(ratio, f"solve: {getattr(inner, 'name', 'the field')}")
    jump_ts = field.jump_times(t0, t1) if isinstance(field, PiecewiseField) else None
    # A field carrying its numbers as leaves gets its times as arrays too, so that a new h
    # (a new horizon) reuses the program; a field static as a whole (a closure) compiles anew
    # anyway and keeps static times, which make a smaller program (faster to compile).
    carries_arrays = any(isinstance(x, (jax.Array, np.ndarray)) for x in jax.tree.leaves(field))
    times = (jnp.asarray(t0), jnp.asarray(t1)) if carries_arrays else (t0, t1)
    return _diffeqsolve(field, params0, *times, ts, rtol=rtol, atol=atol, jump_ts=jump_ts,
                        max_steps=max_steps, solver=solver)


def _check_time_grid(ts: jax.Array, t0: Optional[float]) -> tuple[float, float]:
    """(t0, t1) of a time grid ``ts`` that is 1-d, finite and strictly increasing."""
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"ts must be a 1-d array of times, got shape {ts.shape}")
    if not is_concrete(ts):
        raise ValueError("solve needs concrete times ts (use solve_steps for traced ones)")
    times = np.asarray(ts, dtype=float)
    if not np.all(np.isfinite(times)):
        i = int(np.argmin(np.isfinite(times)))
        raise ValueError(f"ts must be finite, got ts[{i}]={float(times[i])!r}")
    steps = np.diff(times)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise ValueError(f"ts must be strictly increasing, got ts[{i}]={float(times[i])!r} and "
                         f"ts[{i + 1}]={float(times[i + 1])!r}")
    start = float(times[0]) if t0 is None else float(t0)
    if not math.isfinite(start) or start > times[0]:
        raise ValueError(f"t0 must be finite and at most ts[0]={float(times[0])!r}, got t0={t0!r}")
    return start, float(times[-1])


def _diffeqsolve(field, params0, t0, t1, ts, *, rtol, atol, jump_ts, max_steps,
                 solver: diffrax.AbstractSolver) -> PyTree:
    """The one diffrax call behind :func:`solve` and :func:`solve_steps` (``solver`` + PID)."""
    controller = diffrax.PIDController(rtol=rtol, atol=atol, jump_ts=jump_ts)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver,
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
    solver: diffrax.AbstractSolver = diffrax.Dopri8(),
    allow_float32: bool = False,
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
    is its ``jump_ts``. Same solver (``solver``, default Dopri8) and tolerances as
    :func:`solve`, the same float64
    requirement (on ``params0``; ``allow_float32=True`` opts out), and the same regime
    check: the ratio of each member's first-order term to its leading term at ``params0``
    is computed inside the compiled program (one more field evaluation per member) and a
    member above :data:`~adabias.flows.regime.REGIME_THRESHOLD` is warned about by its step
    size and hyperparameters.

    Returns:
      One pytree per step size, leading axis N_i + 1 (the times n·h_i, n = 0 … N_i).
    """
    require_float64("solve_steps", allow_float32=allow_float32, params0=params0)
    step_sizes, num_steps = list(step_sizes), list(num_steps)
    if not step_sizes or len(step_sizes) != len(num_steps):
        raise ValueError("step_sizes and num_steps must be non-empty and of equal length, got "
                         f"{len(step_sizes)} and {len(num_steps)}")
    for i, (h, n) in enumerate(zip(step_sizes, num_steps)):
        check_positive(f"step_sizes[{i}]", h)
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"num_steps[{i}] must be a positive integer, got {n!r}")
    step_sizes, num_steps = [float(h) for h in step_sizes], [int(n) for n in num_steps]
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
        ys = _diffeqsolve(field, params0, jnp.zeros_like(h), n * h, jnp.minimum(grid, n) * h,
                          rtol=rtol, atol=atol, jump_ts=jump_ts, max_steps=max_steps,
                          solver=solver)
        ratio = first_order_ratio(field, params0, n * h)
        return ys, jnp.zeros((), h.dtype) if ratio is None else ratio

    dtype = jnp.result_type(float)
    arguments = (jnp.asarray(step_sizes, dtype), jnp.asarray(num_steps), hyper)
    if sequential:
        ys, ratios = jax.jit(lambda args: jax.lax.map(lambda a: one(*a), args))(arguments)
    else:
        ys, ratios = jax.jit(jax.vmap(one))(*arguments)
    for i, ratio in enumerate(np.asarray(ratios)):
        point = "".join(f", {k}={np.asarray(v[i]).item()!r}" for k, v in hyper.items())
        warn_outside_regime(ratio, f"solve_steps: make_field(h={step_sizes[i]!r}{point})")
    return [jax.tree.map(lambda y: y[i, : n + 1], ys) for i, n in enumerate(num_steps)]
