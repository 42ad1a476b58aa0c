"""LWL diagonal linear network for sparse regression.

Parameters x = (u, v) ∈ ℝ^d × ℝ^d, effective weights w = u⊙u − v⊙v, prediction f = Z w for
features Z ∈ ℝ^{n×d}, loss L = ½·mean_i (f_i − y_i)².
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

__all__ = [
    "diagonal_net_diag_power_trace",
    "diagonal_net_hessian_diag_on_manifold",
    "diagonal_net_loss",
    "diagonal_net_predict",
    "diagonal_net_test_loss",
    "diagonal_net_weights",
    "init_diagonal_net",
    "sparse_regression_data",
]

Params = dict[str, Array]
Batch = dict[str, Array]


def diagonal_net_weights(params: Params) -> Array:
    """w = u⊙u − v⊙v."""
    return params["u"] ** 2 - params["v"] ** 2


def diagonal_net_predict(params: Params, z: ArrayLike) -> Array:
    """f = Z w with w = u⊙u − v⊙v; ``z`` has shape (n, d) (or (d,) for one sample)."""
    return jnp.asarray(z) @ diagonal_net_weights(params)


def diagonal_net_loss(params: Params, batch: Batch) -> Array:
    """L = ½·mean_i (⟨w, z_i⟩ − y_i)² for batch = {"z": (n, d), "y": (n,)}."""
    residual = diagonal_net_predict(params, batch["z"]) - batch["y"]
    return 0.5 * jnp.mean(residual**2)


def diagonal_net_test_loss(params: Params, w_star: ArrayLike) -> Array:
    """‖w − w*‖².

    For isotropic features (Rademacher or standard Gaussian, E[zzᵀ] = I) and noiseless labels
    this is twice the population loss: E_z ½(⟨w − w*, z⟩)² = ½‖w − w*‖².
    """
    diff = diagonal_net_weights(params) - jnp.asarray(w_star)
    return jnp.sum(diff**2)


def diagonal_net_hessian_diag_on_manifold(params: Params, z: ArrayLike) -> Params:
    """Diag(H) at a zero-residual point: {"u": 4·mean_i z_ij²·u_j², "v": 4·mean_i z_ij²·v_j²}.

    At zero residual H = (1/n) JᵀJ with J = ∂f/∂(u, v), J_i = (2 z_i⊙u, −2 z_i⊙v); hence the
    diagonal entries (1/n) Σ_i 4 z_ij² u_j² (and v_j²). For z ∈ {±1}^d, mean z² = 1.
    """
    m2 = jnp.mean(jnp.asarray(z) ** 2, axis=0)
    return {"u": 4.0 * m2 * params["u"] ** 2, "v": 4.0 * m2 * params["v"] ** 2}


def diagonal_net_diag_power_trace(params: Params, z: ArrayLike, power: float) -> Array:
    """Σ_j (4m₂ⱼ)^p (|u_j|^{2p} + |v_j|^{2p}) = tr(Diag(H)^p) on Γ (m₂ = mean_i z_ij²).

    p = 1: tr(H) (SGD's measure), p = 1/2: tr(Diag(H)^{1/2}) (Adam's), p = 1 − λ: AdamE-λ's
    (LWL Table 1). Diag(H) on Γ is :func:`diagonal_net_hessian_diag_on_manifold`.
    """
    diag = diagonal_net_hessian_diag_on_manifold(params, z)
    return sum(jnp.sum(h**power) for h in diag.values())


def init_diagonal_net(key: Any, d: int, scale: float = 0.1, dtype: Any = None) -> Params:
    """u = v = scale·g with ONE draw g ~ N(0, I_d) (LWL's init), so w = 0 at initialisation."""
    g = jax.random.normal(key, (d,), dtype=dtype or jnp.result_type(float))
    u = scale * g
    return {"u": u, "v": u}


def sparse_regression_data(
    key: Any,
    n: int,
    d: int,
    k: int,
    *,
    features: Literal["rademacher", "gaussian"] = "rademacher",
    noise_std: float = 0.0,
    random_support: bool = False,
    dtype: Any = None,
) -> tuple[Batch, Array]:
    """Sparse regression data: y = Z w* (+ noise_std·N(0, 1)), returns ({"z", "y"}, w*).

    w* has k entries equal to 1.0: the first k coordinates, or (``random_support=True``) k
    coordinates drawn uniformly without replacement. Features: z ∈ {±1}^d uniform
    ("rademacher") or N(0, I_d) ("gaussian").
    """
    if not 0 <= k <= d:
        raise ValueError(f"k must be in [0, d={d}], got {k!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    dtype = dtype or jnp.result_type(float)
    k_z, k_s, k_n = jax.random.split(key, 3)
    if features == "rademacher":
        z = jax.random.rademacher(k_z, (n, d), dtype=dtype)
    elif features == "gaussian":
        z = jax.random.normal(k_z, (n, d), dtype=dtype)
    else:
        raise ValueError(f"features must be 'rademacher' or 'gaussian', got {features!r}")
    if random_support:
        idx = jax.random.choice(k_s, d, (k,), replace=False)
        w_star = jnp.zeros((d,), dtype).at[idx].set(1.0)
    else:
        w_star = jnp.zeros((d,), dtype).at[:k].set(1.0)
    y = z @ w_star
    if noise_std:
        y = y + noise_std * jax.random.normal(k_n, (n,), dtype=dtype)
    return {"z": z, "y": y}, w_star
