"""Sinh regression: a problem whose SGD and Adam measures each have one minimizer on Γ.

f(θ; z) = Σ_j z_j sinh θ_j, L = ½·mean_i (f(θ; z_i) − y_i)², n < d. ∂_j f = z_j cosh θ_j never
vanishes, and on Γ (zero residual) H = (1/n)JᵀJ, so

    Diag(H)_j = m₂ⱼ cosh² θ_j,   μ = tr(Diag(H)^{1/2}) = Σ_j √m₂ⱼ cosh θ_j = Σ_j √m₂ⱼ √(1 + w_j²),

w = sinh θ, m₂ⱼ = mean_i z_ij². μ is smooth, Adam's S = 1/(√α√m₂ cosh θ) stays bounded, and
since w ↦ √(1 + w²) is strictly convex and Γ = {Z w = y} is affine in w, μ has exactly one
stationary point θ* on Γ, its minimizer (:func:`sinh_regression_min_measure_point`). (The cubic
model z_j(θ_j + θ_j³/3) gives μ = Σ√m₂ⱼ(1 + θ_j²), which as a function of w_j = θ_j + θ_j³/3
is concave where |θ_j| > 1: its stationary points on Γ need not be unique.) SGD's measure
tr(H) = Σ_j m₂ⱼ cosh² θ_j = Σ_j m₂ⱼ(1 + w_j²) is a weighted squared norm of w: its minimizer on
Γ is the weighted least-norm solution (:func:`sinh_regression_min_trace_point`), in general
another point than Adam's.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from adabias.problems.diagonal_net import sparse_regression_data

__all__ = [
    "sinh_regression_data",
    "sinh_regression_hessian_diag_on_manifold",
    "sinh_regression_loss",
    "sinh_regression_measure",
    "sinh_regression_min_measure_point",
    "sinh_regression_min_trace_point",
    "sinh_regression_trace",
]

Batch = dict[str, Array]


def sinh_regression_loss(theta: Array, batch: Batch) -> Array:
    """L(θ) = ½·mean_i (Σ_j z_ij sinh θ_j − y_i)² for batch = {"z": (n, d), "y": (n,)}."""
    residual = batch["z"] @ jnp.sinh(theta) - batch["y"]
    return 0.5 * jnp.mean(residual**2)


def sinh_regression_data(key: Any, n: int, d: int, k: int, *, weight: float = 1.0) -> tuple[Batch, Array]:
    """Gaussian features Z (n × d) and y = Z w*, w* = ``weight`` × the first k unit vectors' sum:
    ({"z", "y"}, w*).

    Γ = {θ : Z sinh θ = y}; w* = sinh θ for the generating θ = arsinh w*
    (:func:`adabias.problems.sparse_regression_data` with Gaussian features).
    """
    batch, w_star = sparse_regression_data(key, n, d, k, features="gaussian")
    return {"z": batch["z"], "y": weight * batch["y"]}, weight * w_star


def sinh_regression_hessian_diag_on_manifold(theta: Array, z: Array) -> Array:
    """Diag(H)_j = m₂ⱼ cosh² θ_j on Γ (m₂ⱼ = mean_i z_ij²), from H = (1/n)JᵀJ, J_ij = z_ij cosh θ_j."""
    return jnp.mean(z**2, axis=0) * jnp.cosh(theta) ** 2


def sinh_regression_measure(theta: Array, z: Array) -> Array:
    """Adam's measure on Γ: μ = tr(Diag(H)^{1/2}) = Σ_j √m₂ⱼ cosh θ_j."""
    return jnp.sum(jnp.sqrt(sinh_regression_hessian_diag_on_manifold(theta, z)))


def sinh_regression_trace(theta: Array, z: Array) -> Array:
    """SGD's measure on Γ: tr(H) = Σ_j m₂ⱼ cosh² θ_j = Σ_j m₂ⱼ (1 + w_j²), w = sinh θ."""
    return jnp.sum(sinh_regression_hessian_diag_on_manifold(theta, z))


@jax.jit
def sinh_regression_min_trace_point(z: Array, y: Array) -> Array:
    """θ = argmin tr(H) on Γ = {θ : Z sinh θ = y}, in closed form.

    tr(H) = Σ_j m₂ⱼ(1 + w_j²) is a weighted squared norm of w = sinh θ, so its minimizer on the
    affine set {Z w = y} is the weighted least-norm solution w = D⁻¹Zᵀ(Z D⁻¹ Zᵀ)⁻¹y,
    D = Diag(m₂) (Z of full row rank). Returns θ = arsinh w.
    """
    if z.ndim != 2 or z.shape[0] > z.shape[1] or y.shape != (z.shape[0],):
        raise ValueError(f"z must be (n, d) with n <= d and y (n,), got z {z.shape} and y {y.shape}")
    scaled = z / jnp.mean(z**2, axis=0)  # Z D⁻¹
    return jnp.arcsinh(scaled.T @ jnp.linalg.solve(scaled @ z.T, y))


@partial(jax.jit, static_argnames="iterations")
def sinh_regression_min_measure_point(z: Array, y: Array, *, iterations: int = 60) -> Array:
    """θ* = argmin μ on Γ = {θ : Z sinh θ = y}, by Newton's method on the Lagrange dual.

    With w = sinh θ and a_j = √m₂ⱼ: minimize Σ_j a_j √(1 + w_j²) subject to Z w = y (strictly
    convex, Z of full row rank). The dual, maximize_λ yᵀλ + Σ_j √(a_j² − q_j²) with q = Zᵀλ, has
    gradient y − Z w(λ), w_j(λ) = q_j/√(a_j² − q_j²) (the Lagrange condition a_j w_j/√(1 + w_j²)
    = (Zᵀλ)_j solved for w), and Hessian −Z Diag(a_j²/(a_j² − q_j²)^{3/2}) Zᵀ. Newton steps from
    λ = 0 are cut to stay 10% inside |q_j| < a_j. Returns θ* = arsinh w(λ*).
    """
    if z.ndim != 2 or z.shape[0] > z.shape[1] or y.shape != (z.shape[0],):
        raise ValueError(f"z must be (n, d) with n <= d and y (n,), got z {z.shape} and y {y.shape}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations!r}")
    a = jnp.sqrt(jnp.mean(z**2, axis=0))

    def primal(lam):
        q = z.T @ lam
        return q / jnp.sqrt(a**2 - q**2), q

    def newton(_, lam):
        w, q = primal(lam)
        curvature = a**2 / (a**2 - q**2) ** 1.5
        step = jnp.linalg.solve(z @ (curvature[:, None] * z.T), y - z @ w)
        dq = z.T @ step
        room = jnp.where(dq > 0, a - q, -a - q) / jnp.where(dq == 0, 1.0, dq)
        room = jnp.where(dq == 0, jnp.inf, room)
        return lam + jnp.minimum(1.0, 0.9 * jnp.min(room)) * step

    lam = jax.lax.fori_loop(0, iterations, newton, jnp.zeros(z.shape[0], dtype=z.dtype))
    return jnp.arcsinh(primal(lam)[0])
