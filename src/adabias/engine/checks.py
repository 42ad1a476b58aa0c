"""Argument checks of :func:`~adabias.engine.run` and :func:`~adabias.engine.sweep`.

They run before anything is compiled and raise ``ValueError`` naming the argument; the
batch check is :func:`adabias._validation.check_batches`, shared with the other layers.
"""

from __future__ import annotations

import itertools
from typing import Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from adabias._validation import check_batches


PARTITION_HINT = (
    "The engine differentiates and updates every leaf, so every leaf must be a floating-point "
    "array. For a model that holds other things (an equinox Module with an activation function, "
    "integer buffers): params, static = eqx.partition(model, eqx.is_inexact_array), train "
    "params with loss_fn(params) = loss(eqx.combine(params, static)) (eqx.filter selects the "
    "same leaves); with flax, train the variables dict, not the Module"
)


def check_params(params, *, name: str = "params0") -> None:
    """Require a non-empty pytree whose leaves are floating-point (or complex) arrays or numbers.

    The message names the offending leaves by path and points to ``eqx.partition``.
    """
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    if not leaves:
        raise ValueError(f"{name} has no array leaves (got {params!r}): pass the initial parameters "
                         "(ab.sweep draws each seed's own with params0=None, init_params=fn(key))")
    if len(leaves) == 1 and leaves[0][1] is params and callable(params) and not _is_array(params):
        raise ValueError(
            f"{name} is a function ({params!r}), not parameters; call it to get the parameters "
            "(ab.sweep takes init_params=fn(key) -> params to draw each seed's start)"
        )
    not_arrays = [(path, leaf) for path, leaf in leaves if not _is_array(leaf)]
    if not_arrays:
        named = ", ".join(f"{name}{jax.tree_util.keystr(path)} ({type(leaf).__name__}: {leaf!r:.60})"
                          for path, leaf in not_arrays[:5])
        raise ValueError(f"{name} has leaves that are not arrays: {named}. {PARTITION_HINT}")
    not_float = [(path, leaf) for path, leaf in leaves if not jnp.issubdtype(_dtype(leaf), jnp.inexact)]
    if not_float:
        named = ", ".join(f"{name}{jax.tree_util.keystr(path)} ({_dtype(leaf)})" for path, leaf in not_float[:5])
        raise ValueError(f"{name} has leaves that are not floating point: {named}; write 0.0 for 0, "
                         f"or jnp.asarray(x, float). {PARTITION_HINT}")


def _is_array(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, int, complex))


def _dtype(leaf):
    return leaf.dtype if hasattr(leaf, "dtype") else jnp.result_type(leaf)


def check_run_arguments(loss_fn, params0, num_steps, *, batches, noise, key, save_every) -> None:
    """The parameters, steps and save interval, noise with its batches and key, and ``loss_fn``
    called once abstractly.

    ``loss_fn(params0)`` (or ``loss_fn(params0, batch)`` with the first batch) must return a
    scalar; it is traced with :func:`jax.eval_shape`, not run.
    """
    check_params(params0)
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a function loss_fn(params[, batch]), got {loss_fn!r}")
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
