"""Argument checks shared by every layer.

Values that are JAX tracers (hyperparameters swept under ``vmap``/``jit``) cannot be
inspected and are passed through (only their dtype is checked); :func:`adabias.sweep` checks
every grid point with concrete values before tracing.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

_FLOAT64_RESOLUTION = float(np.finfo(np.float64).eps)


def _is_real_dtype(dtype: Any) -> bool:
    """Integer or floating (bfloat16 included: jnp knows the ML dtypes NumPy does not)."""
    return bool(jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating))


def is_concrete(value: Any) -> bool:
    """True when ``value`` is a Python/NumPy/JAX number that can be inspected now."""
    return not isinstance(value, jax.core.Tracer) and not callable(value)


def _real(name: str, value: Any) -> float | None:
    """``value`` as a float, or None when it is traced; refuses what is not one real number
    (a string, None, a bool, a callable, a complex number, an array with more than one entry)."""
    if isinstance(value, jax.core.Tracer):
        dtype = value.dtype
        if value.ndim == 0 and _is_real_dtype(dtype):
            return None
        raise ValueError(f"{name} must be a real number, got a traced value of dtype {dtype} "
                        f"and shape {value.shape}")
    dtype = getattr(value, "dtype", None)
    numeric = isinstance(value, numbers.Real) or (dtype is not None and _is_real_dtype(dtype))
    if isinstance(value, (bool, np.bool_)) or not numeric:
        raise ValueError(f"{name} must be a real number, got {name}={value!r} "
                        f"({type(value).__name__})")
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar, got an array of shape {np.shape(value)}")
    return float(value)


def _check(name: str, value: Any, holds: Callable[[float], bool], requirement: str) -> None:
    x = _real(name, value)
    if x is not None and (math.isnan(x) or not holds(x)):
        raise ValueError(f"{name} must {requirement}, got {name}={value!r}")


def check_unit_interval(name: str, value: Any) -> None:
    """Require a real number with ``0 <= value < 1`` (momentum decays β, ρ)."""
    _check(name, value, lambda x: 0.0 <= x < 1.0, "lie in [0, 1)")


def check_open_unit_interval(name: str, value: Any) -> None:
    """Require a real number with ``0 < value < 1`` (AdamE's exponent λ)."""
    _check(name, value, lambda x: 0.0 < x < 1.0, "lie in (0, 1)")


def check_positive(name: str, value: Any) -> None:
    """Require a real number ``value > 0``, finite (step sizes, ε)."""
    _check(name, value, lambda x: x > 0.0 and math.isfinite(x), "be positive and finite")


def check_learning_rate(learning_rate: Any) -> None:
    """A fixed step size must be a positive finite real number; a schedule (callable) is the
    caller's business (optax checks nothing either)."""
    if not callable(learning_rate):
        check_positive("learning_rate", learning_rate)


def check_adam_hyperparameters(learning_rate: Any, beta1: Any, beta2: Any, eps: Any) -> None:
    """The checks every Adam flow makes: h > 0, β, ρ ∈ [0, 1), ε > 0, each a real number
    (a flow's step size is a number, never a schedule; the optimizers check theirs with
    :func:`check_learning_rate` and :func:`check_unit_interval`/:func:`check_positive`)."""
    check_positive("learning_rate", learning_rate)
    check_unit_interval("beta1", beta1)
    check_unit_interval("beta2", beta2)
    check_positive("eps", eps)


def require_x64(what: str) -> None:
    """Fail clearly when float64 is off but ``what`` needs it (O(h²) errors, near-manifold
    drifts, tolerances near 1e-12 are below float32 resolution)."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            f"{what} needs float64: the effects it measures are below float32 resolution. "
            'Call jax.config.update("jax_enable_x64", True) before creating arrays.'
        )


def _narrow_leaf(tree: Any) -> tuple[str, Any] | None:
    """(path, dtype) of the first floating leaf of ``tree`` coarser than float64, if any."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None:
            dtype = np.asarray(leaf).dtype if isinstance(leaf, (float, complex)) else None
        if dtype is not None and jnp.issubdtype(dtype, jnp.inexact) and (
                float(jnp.finfo(dtype).eps) > _FLOAT64_RESOLUTION):
            return jax.tree_util.keystr(path), dtype
    return None


def require_float64(what: str, *, allow_float32: bool = False, needs_x64: bool = True,
                    **values: Any) -> None:
    """Refuse float32 where a comparison of order h² needs float64 (DESIGN §2).

    Float32 input is (a) ``jax_enable_x64`` off, when ``what`` computes in JAX
    (``needs_x64``): JAX then rounds whatever it is given to float32; (b) a floating leaf of
    one of ``values`` (pytrees, named for the message) with a dtype coarser than float64
    (float32, float16, bfloat16, complex64). Python numbers carry no dtype and pass; integer
    leaves pass. ``allow_float32=True`` is the caller's explicit opt-out.
    """
    if allow_float32:
        return
    opt_out = f"or pass allow_float32=True to {what} to compute in lower precision anyway"
    if needs_x64 and not jax.config.jax_enable_x64:
        raise RuntimeError(
            f"{what} needs float64: the O(h²) effects it measures are below float32 "
            'resolution. Call jax.config.update("jax_enable_x64", True) before creating '
            f"arrays, {opt_out}."
        )
    for name, tree in values.items():
        narrow = _narrow_leaf(tree)
        if narrow is not None:
            path, dtype = narrow
            raise TypeError(
                f"{what} needs float64 input, got {name}{path} of dtype {dtype} (resolution "
                f"{float(jnp.finfo(dtype).eps):.1e}): the O(h²) effects it measures are below "
                f"that resolution. Pass float64 arrays, {opt_out}."
            )


def check_batches(batches: Any) -> int:
    """Require a pytree whose leaves share a leading batch axis of size m ≥ 1; return m."""
    leaves = jax.tree.leaves(batches)
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
    if not leaves or None in sizes or len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            "batches must be a pytree whose leaves share a leading axis m ≥ 1 "
            f"(the batch index); got leading sizes {sorted(map(str, sizes))}"
        )
    return int(sizes.pop())
