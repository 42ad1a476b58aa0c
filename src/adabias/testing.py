"""NumPy reference optimizers: the papers' recursions as plain loops, to check the JAX ones.

Used by the tests and by ``lwl.table1``'s step-by-step check. Everything here is NumPy
(float64), written from the formulas, with no JAX in the loop.

The AGM of LWL (DESIGN §3.5, no bias correction), from θ₀ with m₀ = v₀ = 0:

    m_{k+1} = β₁m_k + (1−β₁)g_k,  v_{k+1} = β₂v_k + (1−β₂)V(g_k²),  θ_{k+1} = θ_k − ηS(v_{k+1})m_{k+1}

with g_k = ``gradient(k, θ_k)``; V and S act on flat NumPy vectors.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["agm_reference", "agm_reference_along", "diagonal_net_gradient"]

Gradient = Callable[[int, np.ndarray], np.ndarray]
Statistic = Callable[[np.ndarray], np.ndarray]


def _agm_loop(gradient: Gradient, theta_at: Callable[[int, np.ndarray], np.ndarray],
              theta0: np.ndarray, num_steps: int, learning_rate: float, beta1: float, beta2: float,
              V: Statistic, S: Statistic) -> np.ndarray:
    theta = np.array(theta0, float)
    m, v = np.zeros(theta.size), np.zeros(theta.size)
    out = [theta.copy()]
    for k in range(num_steps):
        theta = theta_at(k, theta)
        g = gradient(k, theta)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * V(g * g)
        theta = theta - learning_rate * S(v) * m
        out.append(theta.copy())
    return np.array(out)


def agm_reference(gradient: Gradient, theta0: np.ndarray, num_steps: int, *, learning_rate: float,
                  beta1: float, beta2: float, V: Statistic, S: Statistic) -> np.ndarray:
    """θ₀, …, θ_K of the AGM recursion (rows), K = ``num_steps``."""
    return _agm_loop(gradient, lambda k, theta: theta, theta0, num_steps, learning_rate, beta1,
                     beta2, V, S)


def agm_reference_along(gradient: Gradient, path: np.ndarray, *, learning_rate: float,
                        beta1: float, beta2: float, V: Statistic, S: Statistic) -> np.ndarray:
    """Every step of a recorded run recomputed: row k+1 is one AGM step from ``path[k]``.

    ``path`` holds θ₀, …, θ_K of another run (rows). Comparing the result's row k+1 with
    ``path[k+1]`` checks every step without the growth of rounding differences along a noisy
    trajectory; m and v are carried by the loop (their recursions are contractive).
    """
    path = np.asarray(path)
    return _agm_loop(gradient, lambda k, theta: np.array(path[k], float), path[0],
                     path.shape[0] - 1, learning_rate, beta1, beta2, V, S)


def diagonal_net_gradient(theta: np.ndarray, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """∇L at θ = (u, v) for L = ½·mean_i(⟨u²−v², z_i⟩ − y_i)², by hand.

    ∂L/∂u = 2u⊙(Zᵀr/n), ∂L/∂v = −2v⊙(Zᵀr/n), r = Z(u² − v²) − y.
    """
    d, n = theta.size // 2, z.shape[0]
    u, v = theta[:d], theta[d:]
    r = z @ (u * u - v * v) - y
    dw = z.T @ r / n
    return np.concatenate([2 * u * dw, -2 * v * dw])
