"""Slow ODEs near the minimizer manifold Γ against label-noise training (LWL; DESIGN §3.5).

* :func:`label_noise_ends`: an optimizer with label noise from ζ₀ for K_η = T/η² steps, every
  η and seed in one sweep; :func:`map_to_manifold` sends the end points to Γ by the
  S-preconditioned gradient flow (``flows.project_to_manifold``); :func:`tracking` compares
  their seed mean with the slow ODE's ζ(T).
* :func:`projected_measure_gradient` and :func:`measure_along`: a measure μ on Γ and
  ‖P_∥∇μ‖, which vanishes at μ's stationary points on Γ.
* :func:`slowest_rate`: the slowest linear decay rate of the coupled slow ODE
  (``flows.label_noise_slow_agm``) at a fixed point.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from adabias import flows
from adabias.engine import sweep
from adabias.problems import label_noise

PyTree = Any
Measure = Callable[[PyTree, Any], jax.Array]  # μ(params, batch)

__all__ = [
    "Tracking",
    "horizon_steps",
    "label_noise_ends",
    "map_to_manifold",
    "tracking",
    "projected_measure_gradient",
    "measure_along",
    "slowest_rate",
]


class Tracking(NamedTuple):
    """A slow ODE's ζ(T) against the seed mean of K_η = T/η² noisy steps mapped to Γ, per η."""

    learning_rate: np.ndarray  # η
    steps: np.ndarray  # K_η
    distance: np.ndarray  # ‖seed mean − ζ(T)‖
    standard_error: np.ndarray  # ‖per-coordinate standard error of the seed mean‖
    drift_ratio: np.ndarray  # ⟨mean − ζ₀, ζ(T) − ζ₀⟩/‖ζ(T) − ζ₀‖²
    ode_displacement: float  # ‖ζ(T) − ζ₀‖


def horizon_steps(horizon: float, learning_rates: Sequence[float]) -> list[int]:
    """K_η = round(T/η²): the steps that reach slow time T = Kη² at each η."""
    return [int(round(horizon / rate**2)) for rate in learning_rates]


def label_noise_ends(
    make_optimizer: Callable[[Any], optax.GradientTransformation],
    loss_fn: Callable,
    batch: Any,
    params0: PyTree,
    *,
    learning_rates: Sequence[float],
    horizon: float,
    delta: float,
    num_seeds: int,
    key: jax.Array,
    progress: bool = False,
) -> list[PyTree]:
    """θ_{K_η} of ``make_optimizer(learning_rate)`` on ``loss_fn(·, batch)`` with label noise ±δ.

    One :func:`adabias.sweep` over η × seeds; it records every gcd of the K_η, so each η is
    read at its own K_η. Returns, per η, the params with a leading axis of ``num_seeds``.
    """
    all_steps = horizon_steps(horizon, learning_rates)
    save_every = int(np.gcd.reduce(all_steps))
    result = sweep(make_optimizer, loss_fn, params0, max(all_steps),
                   grid={"learning_rate": list(learning_rates)}, num_seeds=num_seeds,
                   key=key, batches=jax.tree.map(lambda x: x[None], batch),
                   noise=label_noise(delta), save_every=save_every, progress=progress)
    ends = []
    for index, steps in enumerate(all_steps):
        members = slice(index * num_seeds, (index + 1) * num_seeds)
        ends.append(jax.tree.map(lambda a: a[members, steps // save_every], result.trajectory.params))
    return ends


def map_to_manifold(loss_fn: Callable, batch: Any, *, S: PyTree) -> Callable[[PyTree], PyTree]:
    """Φ_S on params stacked along a leading axis: the θ̇ = −S∇L flow's end on Γ (compiled once)."""
    return jax.jit(jax.vmap(lambda p: flows.project_to_manifold(loss_fn, batch, p, S=S)))


def _flat(tree) -> np.ndarray:
    return np.asarray(ravel_pytree(tree)[0])


def tracking(zeta0: PyTree, zeta_t: PyTree, ends: Sequence[PyTree], *,
             learning_rates: Sequence[float], horizon: float) -> Tracking:
    """:class:`Tracking` of ζ(T) by the end points on Γ (per η, stacked over seeds)."""
    ode_drift = _flat(zeta_t) - _flat(zeta0)
    distance, standard_error, drift_ratio = [], [], []
    for end in ends:
        flat_ends = np.asarray(jax.vmap(lambda p: ravel_pytree(p)[0])(end))
        mean_end = flat_ends.mean(axis=0)
        distance.append(float(np.linalg.norm(mean_end - _flat(zeta_t))))
        standard_error.append(float(np.linalg.norm(flat_ends.std(axis=0)) / np.sqrt(len(flat_ends))))
        simulated = mean_end - _flat(zeta0)
        drift_ratio.append(float(simulated @ ode_drift / (ode_drift @ ode_drift)))
    return Tracking(learning_rate=np.asarray(learning_rates, dtype=float),
                    steps=np.asarray(horizon_steps(horizon, learning_rates)),
                    distance=np.asarray(distance), standard_error=np.asarray(standard_error),
                    drift_ratio=np.asarray(drift_ratio),
                    ode_displacement=float(np.linalg.norm(ode_drift)))


def projected_measure_gradient(loss_fn: Callable, measure: Measure, batch: Any, zeta: PyTree) -> jax.Array:
    """‖P_∥ ∇μ(ζ)‖ at ζ ∈ Γ, μ = ``measure(ζ, batch)``, P_∥ the orthogonal projector onto
    T_ζΓ = null H(ζ) of ``loss_fn(·, batch)`` (``flows.tangent_projector``)."""
    gradient, _ = ravel_pytree(jax.grad(lambda p: measure(p, batch))(zeta))
    return jnp.linalg.norm(flows.tangent_projector(loss_fn, batch, zeta) @ gradient)


@partial(jax.jit, static_argnames=("loss_fn", "measure"))
def measure_along(loss_fn: Callable, measure: Measure, batch: Any, zetas: PyTree) -> tuple[jax.Array, jax.Array]:
    """μ(ζ_k) and ‖P_∥∇μ(ζ_k)‖ for points ζ_k ∈ Γ stacked along a leading axis (one compiled call)."""
    values = jax.vmap(lambda p: measure(p, batch))(zetas)
    norms = jax.vmap(lambda p: projected_measure_gradient(loss_fn, measure, batch, p))(zetas)
    return values, norms


def slowest_rate(field: Callable, loss_fn: Callable, batch: Any, state: flows.SlowAGMState,
                 step: float = 1e-6) -> float:
    """Slowest linear decay rate of the coupled slow ODE at a fixed point (v*, ζ*), ζ* ∈ Γ.

    J = Jacobian of ``field`` (``flows.label_noise_slow_agm``) on the subspace the flow keeps,
    v-space ⊕ T_ζ*Γ (orthonormal basis Q; T_ζ*Γ from ``flows.tangent_projector``), by central
    differences with ``step``; rate = −max Re eig(QᵀJQ). Differences, not ``jax.jacfwd``: the
    field's projection comes from an eigendecomposition of A, whose null space (T_ζΓ) is a
    repeated eigenvalue without a derivative.
    """
    x, unravel = ravel_pytree(state)
    flat_field = jax.jit(lambda y: ravel_pytree(field(0.0, unravel(y)))[0])
    projector = np.asarray(flows.tangent_projector(loss_fn, batch, state.zeta))
    eigenvalues, eigenvectors = np.linalg.eigh(projector)
    tangent = eigenvectors[:, eigenvalues > 0.5]
    p = tangent.shape[0]  # ravel order: v then zeta, each p entries
    basis = np.zeros((2 * p, p + tangent.shape[1]))
    basis[:p, :p] = np.eye(p)
    basis[p:, p:] = tangent
    columns = [(flat_field(x + step * q) - flat_field(x - step * q)) / (2 * step) for q in jnp.asarray(basis.T)]
    restricted = basis.T @ np.stack([np.asarray(c) for c in columns], axis=1)
    return float(-np.max(np.linalg.eigvals(restricted).real))
