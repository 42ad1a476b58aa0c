"""Argument checks of :func:`~adabias.engine.run` and :func:`~adabias.engine.sweep`.

They run before anything is compiled and raise ``ValueError`` naming the argument; the
batch check is :func:`adabias._validation.check_batches`, shared with the other layers.
"""

from __future__ import annotations

import itertools
from typing import Callable, Mapping, Optional, Sequence

import jax
import numpy as np

from adabias._validation import check_batches


def check_run_arguments(loss_fn, params0, num_steps, *, batches, noise, key, save_every) -> None:
    """Steps and save interval, noise with its batches and key, and ``loss_fn`` called once abstractly.

    ``loss_fn(params0)`` (or ``loss_fn(params0, batch)`` with the first batch) must return a
    scalar; it is traced with :func:`jax.eval_shape`, not run.
    """
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative integer, got num_steps={num_steps!r}")
    if not isinstance(save_every, (int, np.integer)) or save_every < 1:
        raise ValueError(f"save_every must be a positive integer, got save_every={save_every!r}")
    if num_steps % save_every:
        raise ValueError(
            f"num_steps={num_steps} must be a multiple of save_every={save_every} "
            "(records are taken every save_every steps, including the last)"
        )
    if noise is not None and batches is None:
        raise ValueError(
            "noise(key, batch) perturbs each step's batch, so it needs batches; for a "
            "full-batch loss with noise pass batches with a leading axis of size 1"
        )
    if noise is not None and key is None:
        raise ValueError("noise needs a PRNG key: pass key=jax.random.key(seed)")
    if batches is not None:
        check_batches(batches)
    try:
        if batches is None:
            out = jax.eval_shape(loss_fn, params0)
        else:
            out = jax.eval_shape(loss_fn, params0, jax.tree.map(lambda x: x[0], batches))
    except TypeError as error:
        form = "loss_fn(params)" if batches is None else "loss_fn(params, batch)"
        raise ValueError(f"loss_fn could not be called as {form}: {error}") from error
    if getattr(out, "shape", None) != ():
        raise ValueError(f"loss_fn must return a scalar, got shape {getattr(out, 'shape', out)}")


def sorted_metrics(metrics: Optional[Mapping[str, Callable]]) -> tuple:
    """``metrics`` checked (a mapping of callables) as ``((name, fn), ...)`` sorted by name."""
    if metrics is None:
        return ()
    if not isinstance(metrics, Mapping):
        raise ValueError("metrics must be a mapping name -> fn(params)")
    for name, fn in metrics.items():
        if not callable(fn):
            raise ValueError(f"metric {name!r} must be callable fn(params), got {fn!r}")
    return tuple(sorted(metrics.items(), key=lambda item: item[0]))


def check_grid(make_optimizer: Callable, grid: Mapping[str, Sequence[float]], *,
               num_seeds: int) -> tuple[list[str], list[list[float]]]:
    """The grid's names and float values, after checking them and ``num_seeds``.

    ``make_optimizer(**point)`` is called once per grid point with concrete values, so a
    bad value raises its ``ValueError`` before anything is traced.
    """
    if not grid:
        raise ValueError("grid must name at least one hyperparameter")
    if not isinstance(num_seeds, (int, np.integer)) or num_seeds < 1:
        raise ValueError(f"num_seeds must be a positive integer, got num_seeds={num_seeds!r}")
    names = list(grid)
    values = [list(np.atleast_1d(np.asarray(grid[name], dtype=float))) for name in names]
    for name, vals in zip(names, values):
        if not vals:
            raise ValueError(f"grid[{name!r}] is empty")
    for point in itertools.product(*values):
        make_optimizer(**dict(zip(names, point)))  # concrete check of every value
    return names, values
