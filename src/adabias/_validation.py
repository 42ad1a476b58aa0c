"""Argument checks shared by every layer.

Values that are JAX tracers (hyperparameters swept under ``vmap``/``jit``) cannot be
inspected and are passed through; :func:`adabias.sweep` checks every grid point with
concrete values before tracing.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np


def is_concrete(value: Any) -> bool:
    """True when ``value`` is a Python/NumPy/JAX number that can be inspected now."""
    return not isinstance(value, jax.core.Tracer) and not callable(value)


def _as_float(name: str, value: Any) -> float:
    try:
        array = np.asarray(value)
    except Exception as error:  # pragma: no cover - defensive
        raise ValueError(f"{name} must be a number, got {value!r}") from error
    if array.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got an array of shape {array.shape}")
    return float(array)


def check_unit_interval(name: str, value: Any) -> None:
    """Require ``0 <= value < 1`` (momentum decays β, ρ)."""
    if not is_concrete(value):
        return
    x = _as_float(name, value)
    if not (0.0 <= x < 1.0) or math.isnan(x):
        raise ValueError(f"{name} must lie in [0, 1), got {name}={value!r}")


def check_positive(name: str, value: Any) -> None:
    """Require ``value > 0`` and finite (step sizes, ε, λ)."""
    if not is_concrete(value):
        return
    x = _as_float(name, value)
    if not (x > 0.0 and math.isfinite(x)):
        raise ValueError(f"{name} must be positive and finite, got {name}={value!r}")


def require_x64(what: str) -> None:
    """Fail clearly when float64 is off but ``what`` needs it (O(h²) errors, near-manifold
    drifts, tolerances near 1e-12 are below float32 resolution)."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            f"{what} needs float64: the effects it measures are below float32 resolution. "
            'Call jax.config.update("jax_enable_x64", True) before creating arrays.'
        )


def check_adam_hyperparameters(learning_rate: Any, beta1: Any, beta2: Any, eps: Any) -> None:
    """The checks every Adam-like optimizer and flow makes: h > 0, β, ρ ∈ [0, 1), ε > 0.

    A schedule (callable) learning rate is passed through (optax checks nothing either)."""
    check_positive("learning_rate", learning_rate)
    check_unit_interval("beta1", beta1)
    check_unit_interval("beta2", beta2)
    check_positive("eps", eps)


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
