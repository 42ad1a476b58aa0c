"""Low-rank matrix sensing with an asymmetric factorisation M = U Vᵀ.

Parameters {"U": (d, r), "V": (d, r)}; prediction ŷ_i = ⟨A_i, U Vᵀ⟩_F for sensing matrices
A_i ∈ ℝ^{d×d}; loss ½·mean_i (ŷ_i − y_i)². Ground truth M* = U* V*ᵀ of rank ``rank``.
Gaussian sensing (:func:`matrix_sensing_data`) or matrix completion, A_i = e_{j_i}e_{k_i}ᵀ
(:func:`matrix_completion_data`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

__all__ = [
    "deep_matrix_product",
    "deep_matrix_sensing_loss",
    "init_deep_matrix_factorization",
    "init_matrix_sensing",
    "matrix_completion_data",
    "matrix_relative_error",
    "matrix_sensing_data",
    "matrix_sensing_loss",
    "matrix_sensing_predict",
    "matrix_sensing_product",
    "matrix_sensing_test_error",
]

Params = dict[str, Array]
Batch = dict[str, Array]


def matrix_sensing_predict(params: Params, a: ArrayLike) -> Array:
    """ŷ_i = ⟨A_i, U Vᵀ⟩_F = Σ_jk A_ijk (U Vᵀ)_jk; ``a`` has shape (n, d, d)."""
    m = params["U"] @ params["V"].T
    return jnp.einsum("njk,jk->n", jnp.asarray(a), m)


def matrix_sensing_loss(params: Params, batch: Batch) -> Array:
    """L = ½·mean_i (⟨A_i, U Vᵀ⟩ − y_i)² for batch = {"a": (n, d, d), "y": (n,)}."""
    residual = matrix_sensing_predict(params, batch["a"]) - batch["y"]
    return 0.5 * jnp.mean(residual**2)


def matrix_sensing_product(params: Params) -> Array:
    """M = U Vᵀ, for factors with any leading (batch) axes: U (..., d, r), V (..., d, r)."""
    return jnp.einsum("...ir,...jr->...ij", params["U"], params["V"])


def matrix_relative_error(m: ArrayLike, m_star: ArrayLike) -> Array:
    """‖M − M*‖_F² / ‖M*‖_F² for one matrix M."""
    m_star = jnp.asarray(m_star)
    diff = jnp.asarray(m) - m_star
    return jnp.sum(diff**2) / jnp.sum(m_star**2)


def matrix_sensing_test_error(params: Params, m_star: ArrayLike) -> Array:
    """Relative recovery error ‖U Vᵀ − M*‖_F² / ‖M*‖_F²."""
    return matrix_relative_error(params["U"] @ params["V"].T, m_star)


def init_matrix_sensing(
    key: Any, d: int, r: int, scale: float = 0.1, dtype: Any = None
) -> Params:
    """U, V with independent entries scale·N(0, 1)/√d (small init); r may exceed the true rank."""
    dtype = dtype or jnp.result_type(float)
    k_u, k_v = jax.random.split(key)
    c = scale / jnp.sqrt(d)
    return {
        "U": c * jax.random.normal(k_u, (d, r), dtype=dtype),
        "V": c * jax.random.normal(k_v, (d, r), dtype=dtype),
    }


def matrix_sensing_data(
    key: Any,
    n: int,
    d: int,
    rank: int,
    *,
    noise_std: float = 0.0,
    dtype: Any = None,
) -> tuple[Batch, Array]:
    """Gaussian sensing: A_i with iid N(0, 1) entries, M* = U* V*ᵀ / √d with U*, V* ~ N(0, 1).

    Returns ({"a": (n, d, d), "y": (n,)}, M*), y_i = ⟨A_i, M*⟩ (+ noise_std·N(0, 1)). The 1/√d
    keeps M*'s entries O(1/√d)·√rank in size.
    """
    if not 1 <= rank <= d:
        raise ValueError(f"rank must be in [1, d={d}], got {rank!r}")
    dtype = dtype or jnp.result_type(float)
    k_a, k_u, k_v, k_n = jax.random.split(key, 4)
    u = jax.random.normal(k_u, (d, rank), dtype=dtype)
    v = jax.random.normal(k_v, (d, rank), dtype=dtype)
    m_star = u @ v.T / jnp.sqrt(d)
    a = jax.random.normal(k_a, (n, d, d), dtype=dtype)
    y = jnp.einsum("njk,jk->n", a, m_star)
    if noise_std:
        y = y + noise_std * jax.random.normal(k_n, (n,), dtype=dtype)
    return {"a": a, "y": y}, m_star


def matrix_completion_data(key: Any, n: int, d: int, rank: int) -> tuple[Batch, Array]:
    """Matrix completion as sensing: A_i = e_{j_i}e_{k_i}ᵀ for n distinct uniformly drawn entries.

    Returns ({"a": (n, d, d), "y": (n,)}, M*), y_i = M*_{j_i k_i}; M* is drawn as in
    :func:`matrix_sensing_data` (U*V*ᵀ/√d, rank ``rank``). The entries are the first n of a
    random permutation of the d² positions, so smaller n give nested subsets.
    """
    if not 1 <= n <= d * d:
        raise ValueError(f"n must be in [1, d²={d * d}], got n={n!r}")
    k_m, k_e = jax.random.split(key)
    _, m_star = matrix_sensing_data(k_m, 1, d, rank)
    entries = jax.random.permutation(k_e, d * d)[:n]
    a = jax.nn.one_hot(entries, d * d, dtype=m_star.dtype).reshape(n, d, d)
    return {"a": a, "y": m_star.reshape(-1)[entries]}, m_star


# --- deep matrix factorization: M = W_L ⋯ W_1 ----------------------------------------------


def deep_matrix_product(params: Params) -> Array:
    """M = W_L ⋯ W_1 for params {"W": (..., L, d, d)} (W_1 first along the layer axis)."""
    w = params["W"]
    m = w[..., 0, :, :]
    for layer in range(1, w.shape[-3]):
        m = w[..., layer, :, :] @ m
    return m


def deep_matrix_sensing_loss(params: Params, batch: Batch) -> Array:
    """L = ½·mean_i (⟨A_i, W_L ⋯ W_1⟩ − y_i)² for batch = {"a": (n, d, d), "y": (n,)}."""
    prediction = jnp.einsum("njk,jk->n", batch["a"], deep_matrix_product(params))
    return 0.5 * jnp.mean((prediction - batch["y"]) ** 2)


def init_deep_matrix_factorization(key: Any, d: int, depth: int, product_scale: float,
                                   dtype: Any = None) -> Params:
    """W_l = c·G_l/√d with G_l iid N(0, 1), c = product_scale^{1/L}: the product W_L⋯W_1 has
    entries of order product_scale/√d (small initialisation at every depth)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth!r}")
    if not product_scale > 0:
        raise ValueError(f"product_scale must be > 0, got {product_scale!r}")
    dtype = dtype or jnp.result_type(float)
    c = product_scale ** (1.0 / depth)
    return {"W": c * jax.random.normal(key, (depth, d, d), dtype=dtype) / jnp.sqrt(d)}
