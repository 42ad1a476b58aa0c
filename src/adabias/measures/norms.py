"""Gradient norms that CKS's bias terms penalize (DESIGN §3.1–3.2).

Each takes a gradient pytree (e.g. ``jax.grad(loss_fn)(params)``) and sums over all leaves.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def _sum_over_leaves(fn, grads: PyTree) -> jax.Array:
    leaves = jax.tree.leaves(grads)
    if not leaves:
        raise ValueError("grads has no leaves")
    return sum(jnp.sum(fn(x)) for x in leaves)


def perturbed_one_norm(grads: PyTree, eps) -> jax.Array:
    """Perturbed one-norm ‖g‖₁,ε = Σᵢ √(gᵢ² + ε) (CKS §2, the norm in bias (2.3))."""
    return _sum_over_leaves(lambda g: jnp.sqrt(g * g + eps), grads)


def one_norm(grads: PyTree) -> jax.Array:
    """‖g‖₁ = Σᵢ |gᵢ|, the ε → 0 limit (2.4)–(2.5) of the perturbed one-norm (minus Σ√ε)."""
    return _sum_over_leaves(jnp.abs, grads)


def squared_two_norm(grads: PyTree) -> jax.Array:
    """‖g‖₂² = Σᵢ gᵢ², penalized when ε ≫ g² ((2.6)–(2.7)) and by GD's modified loss."""
    return _sum_over_leaves(jnp.square, grads)
