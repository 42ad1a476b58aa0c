"""CKS bilinear model E(θ) = ½ (y − θ₁θ₂x)².

The minimisers form the hyperbola θ₁θ₂ = y/x. The paper's default is x = 2, y = 1.5 and the start
θ₀ = (2.8, 3.5).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

__all__ = [
    "BILINEAR_START",
    "BILINEAR_X",
    "BILINEAR_Y",
    "bilinear_landscape",
    "bilinear_loss",
    "bilinear_min_one_norm_point",
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
