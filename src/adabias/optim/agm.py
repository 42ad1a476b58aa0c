"""Adaptive gradient methods (AGM) of LWL, given by a statistic V and a preconditioner S.

    m_{k+1} = β₁ m_k + (1−β₁) ∇ℓ_k(θ_k)
    v_{k+1} = β₂ v_k + (1−β₂) V(∇ℓ_k ∇ℓ_kᵀ)
    θ_{k+1} = θ_k − η S(v_{k+1}) m_{k+1}                     (LWL, Definition of AGM)

V never forms the outer product: here ``V`` maps the *diagonal* of a PSD matrix M (a
pytree shaped like the parameters; for M = ggᵀ it is g⊙g) to the statistic v, and ``S``
maps v to the diagonal of the preconditioner. Because V takes a diagonal, the same V
applies to the noise covariance Σ in the slow ODE (:mod:`adabias.flows`).

| optimizer | V(M)                              | S(v)              |
| --------- | --------------------------------- | ----------------- |
| Adam      | diag(M)                           | 1/(√v + ε)        |
| Adam-mini | mean of diag(M) over i's block    | 1/(√v + ε)        |
| Adalayer  | mean of diag(M) over i's leaf     | 1/(√v + ε)        |
| AdamE-λ   | diag(M)                           | 1/(v^λ + ε)       |
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from adabias._validation import (check_learning_rate, check_open_unit_interval, check_positive,
                                 check_unit_interval)
from adabias.optim.types import ScalarOrSchedule

PyTree = Any
Statistic = Callable[[PyTree], PyTree]
Preconditioner = Callable[[PyTree], PyTree]
InitialV = Union[float, jax.Array, PyTree]


# --- statistics V (applied to the diagonal of M) -------------------------------------


def diagonal(diag_m: PyTree) -> PyTree:
    """Adam's V(M) = diag(M)."""
    return diag_m


def leaf_mean(diag_m: PyTree) -> PyTree:
    """Adalayer's V(M)_i = mean_{j∈L(i)} M_jj, L(i) the pytree leaf (layer) holding i."""
    return jax.tree.map(lambda d: jnp.broadcast_to(jnp.mean(d), d.shape), diag_m)


def check_blocks(blocks: PyTree) -> int:
    """Validate Adam-mini block ids and return the number of segments (max id + 1).

    Ids are labels of the parameters' blocks: integers in [0, p), p the number of entries of
    ``blocks`` (= of the parameters): p parameters form at most p blocks, and the segment
    table has max id + 1 rows, so a larger id is refused rather than allocated. Unused ids
    (gaps, e.g. {0, 2}) are allowed: an empty block holds no parameter and changes nothing.
    """
    leaves = jax.tree.leaves(blocks)
    if not leaves:
        raise ValueError("blocks must be a non-empty pytree of integer arrays, got no leaves")
    arrays = [np.asarray(leaf) for leaf in leaves]
    for array in arrays:
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"blocks must hold integer block ids, got dtype {array.dtype}")
    size = sum(array.size for array in arrays)
    low = min(int(array.min()) for array in arrays if array.size) if size else 0
    high = max(int(array.max()) for array in arrays if array.size) if size else 0
    if low < 0:
        raise ValueError(f"blocks must be non-negative ids, got min id {low}")
    if high >= max(size, 1):
        raise ValueError(f"block ids must lie in [0, {size}) (the number of parameters), got "
                         f"max id {high}")
    return high + 1


def check_shaped_like(name: str, tree: PyTree, params: PyTree) -> None:
    """Require ``tree`` to have the structure and leaf shapes of ``params``."""
    tree_def, params_def = jax.tree.structure(tree), jax.tree.structure(params)
    if tree_def != params_def:
        raise ValueError(
            f"{name} must be shaped like params: structure {tree_def} != {params_def}"
        )
    for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(params)):
        if np.shape(a) != np.shape(b):
            raise ValueError(
                f"{name} must be shaped like params: leaf shape {np.shape(a)} != {np.shape(b)}"
            )


def block_mean(blocks: PyTree) -> Statistic:
    """Adam-mini's V(M)_i = mean_{j∈B(i)} M_jj, B(i) the block with i's id in ``blocks``.

    ``blocks`` is a pytree of integer ids shaped like the parameters; ids are global
    across leaves, so a block may span several leaves.
    """
    num_blocks = check_blocks(blocks)
    # NumPy, not jnp: the ids are constants, so a transform built inside a trace (e.g. under
    # jit, or probed by flows.probe_memory) holds concrete arrays, not tracers.
    flat_ids = np.concatenate([np.asarray(b, np.int32).ravel() for b in jax.tree.leaves(blocks)])
    sizes = np.bincount(flat_ids, minlength=num_blocks).astype(np.float64)

    def statistic(diag_m: PyTree) -> PyTree:
        flat, unravel = ravel_pytree(diag_m)
        if flat.shape != flat_ids.shape:
            raise ValueError(
                f"blocks must be shaped like params: {flat_ids.size} block ids "
                f"for {flat.size} parameters"
            )
        sums = jax.ops.segment_sum(flat, flat_ids, num_segments=num_blocks)
        means = sums / jnp.maximum(sizes, 1.0).astype(flat.dtype)
        return unravel(means[flat_ids])

    statistic.blocks = blocks  # type: ignore[attr-defined]
    return statistic


# --- preconditioners S ----------------------------------------------------------------


def inverse_root(eps: float, *, eps_inside_sqrt: bool = False) -> Preconditioner:
    """Adam's S(v) = 1/(√v + ε) (LWL), or 1/√(v + ε) with ``eps_inside_sqrt`` (CKS)."""
    check_positive("eps", eps)
    if eps_inside_sqrt:
        return lambda v: jax.tree.map(lambda x: 1.0 / jnp.sqrt(x + eps), v)
    return lambda v: jax.tree.map(lambda x: 1.0 / (jnp.sqrt(x) + eps), v)


def inverse_power(lam: float, eps: float) -> Preconditioner:
    """AdamE-λ's S(v) = 1/(v^λ + ε), λ ∈ (0, 1); λ = 1/2 is Adam's (at λ = 1 the measure
    tr(Diag(H)^{1−λ}) it reduces is constant, at λ = 0 S is constant: SGD with momentum)."""
    check_open_unit_interval("lam", lam)
    check_positive("eps", eps)
    return lambda v: jax.tree.map(lambda x: 1.0 / (jnp.power(x, lam) + eps), v)


# --- the transform ----------------------------------------------------------------------


class ScaleByAGMState(NamedTuple):
    """State of :func:`scale_by_agm`: step count, first moment m, statistic v."""

    count: jax.Array
    m: PyTree
    v: PyTree


def _initial_statistic(initial_v: InitialV, statistic: PyTree) -> PyTree:
    """v₀ shaped like ``statistic``: ``initial_v`` in every entry (a number) or as given (a pytree)."""
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(initial_v)) and np.ndim(initial_v) == 0:
        return jax.tree.map(lambda s: jnp.full_like(s, initial_v), statistic)
    check_shaped_like("initial_v", initial_v, statistic)
    return jax.tree.map(lambda s, v: jnp.asarray(v, s.dtype), statistic, initial_v)


def scale_by_agm(
    beta1: float,
    beta2: float,
    V: Statistic,
    S: Preconditioner,
    *,
    initial_v: InitialV = 0.0,
) -> optax.GradientTransformation:
    """Direction S(v_{k+1}) m_{k+1} of an AGM (no bias correction), before the step size.

    m_{k+1} = β₁m_k + (1−β₁)g,  v_{k+1} = β₂v_k + (1−β₂)V(g⊙g),  direction = S(v_{k+1})⊙m_{k+1},
    from m₀ = 0 and v₀ = ``initial_v`` (as optax's ``scale_by_rms(initial_scale=…)``): a number
    for every entry, or a pytree shaped like params (e.g. V(Σ) of the slow ODE, to start with
    v equilibrated).
    """
    check_unit_interval("beta1", beta1)
    check_unit_interval("beta2", beta2)

    def init_fn(params: PyTree) -> ScaleByAGMState:
        statistic = V(jax.tree.map(jnp.zeros_like, params))
        return ScaleByAGMState(
            count=jnp.zeros([], jnp.int32),
            m=jax.tree.map(jnp.zeros_like, params),
            v=_initial_statistic(initial_v, statistic),
        )

    def update_fn(updates: PyTree, state: ScaleByAGMState, params: PyTree = None):
        del params
        m = optax.tree.update_moment(updates, state.m, beta1, 1)
        statistic = V(jax.tree.map(jnp.square, updates))
        v = jax.tree.map(lambda s, old: beta2 * old + (1.0 - beta2) * s, statistic, state.v)
        direction = jax.tree.map(jnp.multiply, S(v), m)
        return direction, ScaleByAGMState(count=optax.safe_increment(state.count), m=m, v=v)

    return optax.GradientTransformation(init_fn, update_fn)


def agm(
    learning_rate: ScalarOrSchedule,
    beta1: float,
    beta2: float,
    V: Statistic,
    S: Preconditioner,
    *,
    initial_v: InitialV = 0.0,
) -> optax.GradientTransformation:
    """An adaptive gradient method of LWL: θ_{k+1} = θ_k − η S(v_{k+1}) m_{k+1}.

    Args:
      learning_rate: η.
      beta1: β₁ ∈ [0, 1) (β₁ = 0 gives RMSProp-type methods).
      beta2: β₂ ∈ [0, 1).
      V: maps diag(M) (a pytree like params) to the statistic v; see :func:`diagonal`,
        :func:`block_mean`, :func:`leaf_mean`.
      S: maps v to the diagonal preconditioner; see :func:`inverse_root`,
        :func:`inverse_power`.
      initial_v: v₀, a number or a pytree shaped like params (default 0).
    """
    check_learning_rate(learning_rate)
    return optax.chain(scale_by_agm(beta1, beta2, V, S, initial_v=initial_v),
                       optax.scale_by_learning_rate(learning_rate))


def adame(
    learning_rate: ScalarOrSchedule,
    lam: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    *,
    initial_v: InitialV = 0.0,
) -> optax.GradientTransformation:
    """AdamE-λ (LWL): V = diag, S(v) = 1/(v^λ + ε), λ ∈ (0, 1); it reduces tr(Diag(H)^{1−λ}).
    v₀ = ``initial_v``."""
    return agm(learning_rate, beta1, beta2, diagonal, inverse_power(lam, eps), initial_v=initial_v)


def adam_mini(
    learning_rate: ScalarOrSchedule,
    blocks: PyTree,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    *,
    initial_v: InitialV = 0.0,
) -> optax.GradientTransformation:
    """Adam-mini (LWL): v shared within each block of ``blocks``, S(v) = 1/(√v + ε).

    ``blocks``: integer block ids in [0, p) (p parameters; gaps allowed, :func:`check_blocks`),
    a pytree shaped like the parameters (checked at ``init``). ``initial_v``: v₀, a number or
    a pytree like params constant on each block.
    """
    transform = agm(learning_rate, beta1, beta2, block_mean(blocks), inverse_root(eps),
                    initial_v=initial_v)

    def init_fn(params: PyTree):
        check_shaped_like("blocks", blocks, params)
        return transform.init(params)

    return optax.GradientTransformation(init_fn, transform.update)


def adalayer(
    learning_rate: ScalarOrSchedule,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    *,
    initial_v: InitialV = 0.0,
) -> optax.GradientTransformation:
    """Adalayer (LWL): one shared v per pytree leaf (layer), S(v) = 1/(√v + ε).

    ``initial_v``: v₀, a number or a pytree like params constant on each leaf.
    """
    return agm(learning_rate, beta1, beta2, leaf_mean, inverse_root(eps), initial_v=initial_v)
