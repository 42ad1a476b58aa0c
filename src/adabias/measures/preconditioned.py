"""Preconditioned sharpness and the edge of stability of adaptive methods (DESIGN §3.6).

Adam moves by −h·m̂/P with the diagonal P = √v̂ + ε (Kingma–Ba) or √(v̂ + ε) (CKS). Frozen P,
on a quadratic with Hessian H, its linearization is heavy ball on P^{−1/2}HP^{−1/2} with
momentum β₁ (step h(1−β₁)), stable while

    λ_max(P^{−1/2} H P^{−1/2}) < 2(1+β₁)/((1−β₁)h)        (38/h for β₁ = 0.9)

(Cohen et al., "Adaptive gradient methods at the edge of stability"). Adaptive methods train
where the left side hovers at the right; there no expansion in h (a modified flow) tracks the
iterates, so the ratio of the two is the diagnostic to read beside every flow.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from adabias._validation import check_positive, check_unit_interval
from adabias.measures.curvature import top_eigenvalue

PyTree = Any

__all__ = ["adaptive_preconditioner", "preconditioned_sharpness", "stability_threshold",
           "stability_ratio"]


def adaptive_preconditioner(v_hat: PyTree, eps: float, *, eps_inside_sqrt: bool = True) -> PyTree:
    """The diagonal P an Adam-type update divides by: √(v̂ + ε), or √v̂ + ε with
    ``eps_inside_sqrt=False``."""
    check_positive("eps", eps)
    if eps_inside_sqrt:
        return jax.tree.map(lambda v: jnp.sqrt(v + eps), v_hat)
    return jax.tree.map(lambda v: jnp.sqrt(v) + eps, v_hat)


def preconditioned_sharpness(loss_fn: Callable[..., jax.Array], params: PyTree, v_hat: PyTree,
                             eps: float, *args, eps_inside_sqrt: bool = True,
                             num_iters: int = 30, key: Optional[jax.Array] = None) -> jax.Array:
    """λ_max(P^{−1/2} H P^{−1/2}) with H = ∇²E(θ), E = ``loss_fn(params, *args)`` and P from
    :func:`adaptive_preconditioner` (``v_hat`` shaped like ``params``).

    P^{−1/2}HP^{−1/2} is the Hessian of y ↦ E(P^{−1/2}y) at y = P^{1/2}θ, so this is
    :func:`adabias.measures.top_eigenvalue` (Lanczos on HVPs, ``num_iters`` steps) of that loss.
    """
    x, unravel = ravel_pytree(params)
    p, _ = ravel_pytree(adaptive_preconditioner(v_hat, eps, eps_inside_sqrt=eps_inside_sqrt))
    if p.shape != x.shape:
        raise ValueError(f"v_hat must be shaped like params: {p.size} entries for {x.size} "
                         "parameters")
    scale = 1.0 / jnp.sqrt(p)
    scaled_loss = lambda y, *rest: loss_fn(unravel(y * scale), *rest)
    return top_eigenvalue(scaled_loss, x / scale, *args, num_iters=num_iters, key=key)


def stability_threshold(learning_rate: Any, beta1: Any) -> jax.Array:
    """2(1+β₁)/((1−β₁)h): the preconditioned sharpness at which Adam's linearization (heavy
    ball with momentum β₁) loses stability."""
    check_positive("learning_rate", learning_rate)
    check_unit_interval("beta1", beta1)
    return 2.0 * (1.0 + jnp.asarray(beta1)) / ((1.0 - jnp.asarray(beta1)) * learning_rate)


def stability_ratio(sharpness: Any, learning_rate: Any, beta1: Any) -> jax.Array:
    """sharpness / :func:`stability_threshold`: below 1 stable, about 1 at the edge of
    stability, where no modified flow tracks the iterates."""
    return jnp.asarray(sharpness) / stability_threshold(learning_rate, beta1)
