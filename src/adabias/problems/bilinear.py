"""CKS bilinear model E(θ) = ½ (y − θ₁θ₂x)² (CKS §5, Figures 2 and 3).

The minimisers form the hyperbola θ₁θ₂ = y/x. The paper's default is x = 2, y = 1.5 and the start
θ₀ = (2.8, 3.5). With residual r = y − θ₁θ₂x the gradient is ∇E = −r·x·(θ₂, θ₁), so

    ‖∇E‖₁ = x·|r|·(|θ₁| + |θ₂|):

at a given loss the one-norm of the gradient is ordered by s(θ) = |θ₁| + |θ₂|, which on the
hyperbola is smallest at the cross (√(y/x), √(y/x)), s = 2√(y/x).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

__all__ = [
    "BILINEAR_START",
    "BILINEAR_X",
    "BILINEAR_Y",
    "bilinear_landscape",
    "bilinear_loss",
    "bilinear_min_one_norm_point",
    "bilinear_minimum_set",
    "bilinear_one_norm_per_residual",
    "bilinear_residual",
    "bilinear_sign_flow_limit",
]

BILINEAR_X: float = 2.0
BILINEAR_Y: float = 1.5
#: The paper's starting point θ₀ = (2.8, 3.5).
BILINEAR_START: tuple[float, float] = (2.8, 3.5)


def bilinear_loss(params: ArrayLike, x: float = BILINEAR_X, y: float = BILINEAR_Y) -> Array:
    """E(θ) = ½ (y − θ₁θ₂x)² for ``params`` = θ of shape (2,).

    ∇E = −(y − θ₁θ₂x)·x·(θ₂, θ₁).
    """
    theta = jnp.asarray(params)
    residual = y - theta[..., 0] * theta[..., 1] * x
    return 0.5 * residual**2


def bilinear_residual(params: ArrayLike, x: float = BILINEAR_X, y: float = BILINEAR_Y):
    """r = y − θ₁θ₂x for ``params`` of shape (..., 2), a NumPy or JAX array (the result is
    of the same kind)."""
    return y - params[..., 0] * params[..., 1] * x


def bilinear_one_norm_per_residual(params: ArrayLike):
    """s(θ) = |θ₁| + |θ₂| = ‖∇E(θ)‖₁/(x|r|) for ``params`` of shape (..., 2), a NumPy or JAX
    array (the result is of the same kind)."""
    return abs(params[..., 0]) + abs(params[..., 1])


def bilinear_minimum_set(theta_1: ArrayLike, x: float = BILINEAR_X, y: float = BILINEAR_Y):
    """θ₂ = y/(x·θ₁): the minimum set θ₁θ₂ = y/x as a graph over θ₁ ≠ 0 (NumPy or JAX)."""
    return y / x / theta_1


def bilinear_sign_flow_limit(start: tuple[float, float] = BILINEAR_START, x: float = BILINEAR_X,
                             y: float = BILINEAR_Y) -> np.ndarray:
    """Where ε-signGD (order 0, ε → 0) from ``start`` meets the minimum set.

    While both gradient entries are large against √ε, θ̇ = −sign(∇E) = −(1, 1) (for θ₁θ₂ > y/x,
    θ > 0), so θ₂ − θ₁ = d is conserved: θ₁(θ₁ + d) = y/x, θ₁ = (−d + √(d² + 4y/x))/2.
    """
    d = start[1] - start[0]
    c = y / x
    theta_1 = (-d + math.sqrt(d * d + 4 * c)) / 2
    return np.array([theta_1, theta_1 + d])


def bilinear_min_one_norm_point(x: float = BILINEAR_X, y: float = BILINEAR_Y) -> Array:
    """The balanced minimiser (√(y/x), √(y/x)) on θ₁θ₂ = y/x (the paper's cross).

    Near the minimum set ‖∇E‖₁ = |r|·x·(|θ₁| + |θ₂|) for residual r, and at fixed |r| the sum
    |θ₁| + |θ₂| on the level set is smallest at θ₁ = θ₂; so this is where the one-norm of the
    gradient is smallest nearby (and where ε-signGD-type implicit bias points).
    """
    c = jnp.sqrt(jnp.asarray(y / x))
    return jnp.stack([c, c])


def bilinear_landscape(
    grid_1: ArrayLike, grid_2: ArrayLike, x: float = BILINEAR_X, y: float = BILINEAR_Y
) -> Array:
    """E on the mesh ``meshgrid(grid_1, grid_2, indexing="xy")``: shape (len(grid_2), len(grid_1)).

    ``result[j, i] = E((grid_1[i], grid_2[j]))``, the layout matplotlib's ``contour(g1, g2, Z)``
    expects.
    """
    t1, t2 = jnp.meshgrid(jnp.asarray(grid_1), jnp.asarray(grid_2), indexing="xy")
    return 0.5 * (y - t1 * t2 * x) ** 2
