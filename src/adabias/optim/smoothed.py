"""Smoothed sign methods: Lion and Signum with sign(x) replaced by x/√(x² + ε).

A sign update is not differentiable where its argument crosses zero, so no modified flow
(:func:`adabias.flows.memory_corrected`) can expand it; the smoothed sign s_ε(x) = x/√(x² + ε)
is smooth, equals sign(x) up to O(ε/x²) where |x| ≫ √ε, and is linear, x/√ε, where |x| ≪ √ε.

    Lion (Chen et al. 2023):  c = β₁m + (1−β₁)g,  θ ← θ − h·s_ε(c),  m ← β₂m + (1−β₂)g
    Signum (Bernstein et al. 2018):  m ← βm + (1−β)g,  θ ← θ − h·s_ε(m)

Both start from m = 0 and are ``optax.GradientTransformation``s; ε → 0 gives
``optax.lion`` (without weight decay) and sign momentum.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adabias._validation import check_learning_rate, check_positive, check_unit_interval
from adabias.optim.types import ScalarOrSchedule

PyTree = Any

__all__ = ["SmoothedSignState", "smoothed_sign", "scale_by_smoothed_lion",
           "scale_by_smoothed_signum", "smoothed_lion", "smoothed_signum"]


class SmoothedSignState(NamedTuple):
    """State of the smoothed sign methods: step count and the momentum m."""

    count: jax.Array
    mu: PyTree


def smoothed_sign(x: PyTree, eps: float) -> PyTree:
    """s_ε(x) = x/√(x² + ε), leafwise: the smooth stand-in for sign(x)."""
    return jax.tree.map(lambda v: v / jnp.sqrt(v * v + eps), x)


def _init(params: PyTree) -> SmoothedSignState:
    return SmoothedSignState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))


def scale_by_smoothed_lion(beta1: float = 0.9, beta2: float = 0.99,
                           eps: float = 1e-3) -> optax.GradientTransformation:
    """Lion's direction s_ε(β₁m + (1−β₁)g) with sign smoothed to x/√(x² + ε); then
    m ← β₂m + (1−β₂)g."""
    check_unit_interval("beta1", beta1)
    check_unit_interval("beta2", beta2)
    check_positive("eps", eps)

    def update_fn(updates, state, params=None):
        del params
        mixed = jax.tree.map(lambda m, g: beta1 * m + (1.0 - beta1) * g, state.mu, updates)
        mu = optax.tree.update_moment(updates, state.mu, beta2, 1)
        return smoothed_sign(mixed, eps), SmoothedSignState(optax.safe_increment(state.count), mu)

    return optax.GradientTransformation(_init, update_fn)


def scale_by_smoothed_signum(beta: float = 0.9, eps: float = 1e-3) -> optax.GradientTransformation:
    """Signum's direction s_ε(m) after m ← βm + (1−β)g, sign smoothed to x/√(x² + ε)."""
    check_unit_interval("beta", beta)
    check_positive("eps", eps)

    def update_fn(updates, state, params=None):
        del params
        mu = optax.tree.update_moment(updates, state.mu, beta, 1)
        return smoothed_sign(mu, eps), SmoothedSignState(optax.safe_increment(state.count), mu)

    return optax.GradientTransformation(_init, update_fn)


def smoothed_lion(learning_rate: ScalarOrSchedule, beta1: float = 0.9, beta2: float = 0.99,
                  eps: float = 1e-3) -> optax.GradientTransformation:
    """Smoothed Lion: θ ← θ − h·c/√(c² + ε), c = β₁m + (1−β₁)g; m ← β₂m + (1−β₂)g (the
    sign of Lion replaced by x/√(x² + ε))."""
    check_learning_rate(learning_rate)
    return optax.chain(scale_by_smoothed_lion(beta1, beta2, eps),
                       optax.scale_by_learning_rate(learning_rate))


def smoothed_signum(learning_rate: ScalarOrSchedule, beta: float = 0.9,
                    eps: float = 1e-3) -> optax.GradientTransformation:
    """Smoothed Signum: m ← βm + (1−β)g, θ ← θ − h·m/√(m² + ε) (the sign of Signum replaced
    by x/√(x² + ε))."""
    check_learning_rate(learning_rate)
    return optax.chain(scale_by_smoothed_signum(beta, eps),
                       optax.scale_by_learning_rate(learning_rate))
