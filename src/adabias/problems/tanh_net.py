"""A tiny tanh network: the smooth (C^∞) model on which the flows' orders are measured.

One input, J tanh units, one output:

    f(x; θ) = Σ_j a_j tanh(w_j x + b_j) + c,     E(θ) = ½·mean_i (f(xᵢ; θ) − yᵢ)²,

θ = {"w", "b", "a": (J,), "c": ()} (3J + 1 parameters, 10 for J = 3); the same θ in two layers,
one leaf each, for methods that treat a leaf as a layer (Adalayer, Adam-mini's blocks), is
:func:`tanh_net_by_layer`. The data are N points xᵢ evenly spaced on [−1, 1] with targets
sin 2xᵢ (:func:`tanh_net_sine_data`: ``cks.flow_order``, ``beyond.memory_flows``) or a
teacher's outputs f(xᵢ; θ*) (:func:`tanh_net_teacher_data`: ``beyond.edge_of_stability``,
where θ* is an exact minimum, E(θ*) = 0). Unlike the ReLU :func:`adabias.problems.mlp_apply`,
E is smooth everywhere, so a modified flow's expansion holds at every point.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = ["init_tanh_net", "tanh_net_predict", "tanh_net_loss", "tanh_net_sine_data",
           "tanh_net_teacher_data", "tanh_net_by_layer", "tanh_net_by_kind"]

PyTree = Any
Batch = dict[str, Array]


def tanh_net_predict(params: PyTree, x: Array) -> Array:
    """f(x; θ) = Σ_j a_j tanh(w_j x + b_j) + c at every point of the 1-d array ``x``."""
    units = jnp.tanh(jnp.asarray(x)[:, None] * params["w"] + params["b"])
    return units @ params["a"] + params["c"]


def tanh_net_loss(params: PyTree, batch: Batch) -> Array:
    """E(θ) = ½·mean_i (f(xᵢ; θ) − yᵢ)² for batch = {"x": (N,), "y": (N,)}."""
    return 0.5 * jnp.mean((tanh_net_predict(params, batch["x"]) - batch["y"]) ** 2)


def init_tanh_net(key: Any, units: int = 3) -> PyTree:
    """θ with w_j ~ N(0, 1), b_j ~ N(0, ¼), a_j ~ N(0, 1/J) and c = 0.1 (float64 under
    x64); key 0 gives the experiments' start (and teacher)."""
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
        raise ValueError(f"units must be a positive integer, got units={units!r}")
    k = jax.random.split(key, 3)
    return {"w": jax.random.normal(k[0], (units,)), "b": 0.5 * jax.random.normal(k[1], (units,)),
            "a": jax.random.normal(k[2], (units,)) / math.sqrt(units), "c": jnp.array(0.1)}


def tanh_net_by_layer(params: PyTree) -> PyTree:
    """θ in two layers: ``{"hidden": rows (w_j, b_j), shape (J, 2), "output": (a₁, …, a_J, c)}``."""
    return {"hidden": jnp.stack([params["w"], params["b"]], axis=1),
            "output": jnp.append(params["a"], params["c"])}


def tanh_net_by_kind(layers: PyTree) -> PyTree:
    """The inverse of :func:`tanh_net_by_layer`: ``{"w", "b", "a", "c"}``."""
    hidden, output = layers["hidden"], layers["output"]
    return {"w": hidden[:, 0], "b": hidden[:, 1], "a": output[:-1], "c": output[-1]}


def _points(n: int) -> Array:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got n={n!r}")
    return jnp.asarray(np.linspace(-1.0, 1.0, n))


def tanh_net_sine_data(n: int = 8) -> Batch:
    """n points evenly spaced on [−1, 1] with targets y = sin 2x."""
    x = _points(n)
    return {"x": x, "y": jnp.asarray(np.sin(2.0 * np.asarray(x)))}


def tanh_net_teacher_data(teacher: PyTree, n: int = 8) -> Batch:
    """n points evenly spaced on [−1, 1] with the teacher's outputs y = f(x; θ*), so that
    E(θ*) = 0: θ* is a global minimum of :func:`tanh_net_loss` on these data."""
    x = _points(n)
    return {"x": x, "y": tanh_net_predict(teacher, x)}
