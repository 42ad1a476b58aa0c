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
    "diagonal_net_balanced_point",
    "diagonal_net_diag_power_trace",
    "diagonal_net_leaf_root_trace",
    "diagonal_net_manifold_points",
    "diagonal_net_pair_blocks",
    "diagonal_net_pair_root_trace",
    "diagonal_net_hessian_diag_on_manifold",
    "diagonal_net_loss",
    "diagonal_net_predict",
    "diagonal_net_test_loss",
    "diagonal_net_weights",
    "effective_support",
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


def diagonal_net_balanced_point(w: ArrayLike) -> Params:
    """The point of smallest Σ(u_j² + v_j²) with u⊙u − v⊙v = w: u = √max(w, 0), v = √max(−w, 0).

    For w = w* (zero residual) a point of Γ where u_j·v_j = 0 (balanced).
    """
    w = jnp.asarray(w)
    return {"u": jnp.sqrt(jnp.maximum(w, 0.0)), "v": jnp.sqrt(jnp.maximum(-w, 0.0))}


def diagonal_net_pair_blocks(d: int) -> Params:
    """Adam-mini's blocks B_j = {u_j, v_j}: block ids shared across the two leaves."""
    ids = jnp.arange(d, dtype=jnp.int32)
    return {"u": ids, "v": ids}


def diagonal_net_pair_root_trace(params: Params, z: ArrayLike) -> Array:
    """Σ_B |B|·(mean_{i∈B} H_ii)^{1/2} on Γ for the blocks {u_j, v_j} (Adam-mini, LWL Table 1).

    With Diag(H) = 4m₂⊙(u², v²): Σ_j 2·√(mean(4m₂ⱼu_j², 4m₂ⱼv_j²)) = 2√2 Σ_j √(m₂ⱼ(u_j² + v_j²)).
    """
    u, v = params["u"], params["v"]
    m2 = jnp.mean(jnp.asarray(z) ** 2, axis=0)
    return 2.0 * jnp.sqrt(2.0) * jnp.sum(jnp.sqrt(m2 * (u**2 + v**2)))


def diagonal_net_leaf_root_trace(params: Params, z: ArrayLike) -> Array:
    """Σ_B |B|·(mean_{i∈B} H_ii)^{1/2} on Γ for the leaves u and v (Adalayer, LWL Table 1).

    d·√(mean_j 4m₂ⱼu_j²) + d·√(mean_j 4m₂ⱼv_j²) = 2√d (√(Σ_j m₂ⱼu_j²) + √(Σ_j m₂ⱼv_j²)).
    """
    u, v = params["u"], params["v"]
    m2 = jnp.mean(jnp.asarray(z) ** 2, axis=0)
    d = u.shape[-1]
    return 2.0 * jnp.sqrt(d) * (jnp.sqrt(jnp.sum(m2 * u**2)) + jnp.sqrt(jnp.sum(m2 * v**2)))


def diagonal_net_manifold_points(key: Any, z: Array, y: Array, num_points: int, scale: float) -> Params:
    """Points of Γ = {(u, v): Z(u² − v²) = y} (stacked along a leading axis), constructed exactly.

    Draw u, v ~ N(0, scale²); move w = u² − v² to the nearest w' with Zw' = y
    (w' = w − Z⁺(Zw − y)); then change one of each pair so that u² − v² = w': u_j ← sgn(u_j)√(w'_j + v_j²)
    where w'_j + v_j² ≥ 0, else v_j ← sgn(v_j)√(u_j² − w'_j) (then u_j² − w'_j > 0).
    """
    d = z.shape[1]
    draws = scale * jax.random.normal(key, (num_points, 2, d), dtype=z.dtype)
    u, v = draws[:, 0], draws[:, 1]
    w = u**2 - v**2
    w = w - (jnp.linalg.pinv(z) @ (w @ z.T - y).T).T
    u_fits = w + v**2 >= 0
    new_u = jnp.where(u_fits, jnp.sign(u) * jnp.sqrt(jnp.where(u_fits, w + v**2, 0.0)), u)
    new_v = jnp.where(u_fits, v, jnp.sign(v) * jnp.sqrt(jnp.where(u_fits, 0.0, u**2 - w)))
    return {"u": new_u, "v": new_v}


def effective_support(w: ArrayLike) -> Array:
    """s(w) = ‖w‖₁²/‖w‖₂² over the last axis: 1 for one non-zero entry, m for m equal ones.

    Between 1 and the number of non-zero entries, equal to it when those have equal size: a
    threshold-free count of the non-zeros (the sparsity of LWL's AdamE-λ solutions).
    """
    w = jnp.asarray(w)
    return jnp.sum(jnp.abs(w), axis=-1) ** 2 / jnp.sum(w**2, axis=-1)


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
    weights: Literal["ones", "uniform"] = "ones",
    min_weight: float = 1e-2,
    dtype: Any = None,
) -> tuple[Batch, Array]:
    """Sparse regression data: y = Z w* (+ noise_std·N(0, 1)), returns ({"z", "y"}, w*).

    w* has k non-zero entries: the first k coordinates, or (``random_support=True``) k
    coordinates drawn uniformly without replacement. Their values are 1.0 (``weights="ones"``)
    or, as in the LWL authors' code (``"uniform"``), U(−1, 1) conditioned on |wᵢ*| ≥
    ``min_weight``, i.e. a random sign times U(min_weight, 1). Features: z ∈ {±1}^d uniform
    ("rademacher") or N(0, I_d) ("gaussian").
    """
    if not 0 <= k <= d:
        raise ValueError(f"k must be in [0, d={d}], got {k!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    dtype = dtype or jnp.result_type(float)
    if weights not in ("ones", "uniform"):
        raise ValueError(f"weights must be 'ones' or 'uniform', got {weights!r}")
    if not 0.0 <= min_weight < 1.0:
        raise ValueError(f"min_weight must be in [0, 1), got {min_weight!r}")
    k_z, k_s, k_n = jax.random.split(key, 3)
    if features == "rademacher":
        z = jax.random.rademacher(k_z, (n, d), dtype=dtype)
    elif features == "gaussian":
        z = jax.random.normal(k_z, (n, d), dtype=dtype)
    else:
        raise ValueError(f"features must be 'rademacher' or 'gaussian', got {features!r}")
    if weights == "ones":
        values = jnp.ones((k,), dtype)
    else:
        k_sign, k_size = jax.random.split(jax.random.fold_in(k_s, 1))
        values = (jax.random.rademacher(k_sign, (k,), dtype=dtype)
                  * jax.random.uniform(k_size, (k,), dtype=dtype, minval=min_weight, maxval=1.0))
    if random_support:
        idx = jax.random.choice(k_s, d, (k,), replace=False)
        w_star = jnp.zeros((d,), dtype).at[idx].set(values)
    else:
        w_star = jnp.zeros((d,), dtype).at[:k].set(values)
    y = z @ w_star
    if noise_std:
        y = y + noise_std * jax.random.normal(k_n, (n,), dtype=dtype)
    return {"z": z, "y": y}, w_star
