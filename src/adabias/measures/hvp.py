"""Hessian-vector products: the one primitive every curvature measure and flow uses.

H v = d/dα ∇E(θ + α v) at α = 0, computed forward-over-reverse (``jax.jvp`` of
``jax.grad``): about the cost of two to three gradient evaluations, never a Hessian matrix.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from jax.flatten_util import ravel_pytree

PyTree = Any


def hvp(loss_fn: Callable[..., jax.Array], params: PyTree, tangent: PyTree, *args) -> PyTree:
    """∇²E(θ)·v for E = ``loss_fn(·, *args)``, v = ``tangent`` (a pytree like params)."""
    grad_fn = jax.grad(lambda p: loss_fn(p, *args))
    return jax.jvp(grad_fn, (params,), (tangent,))[1]


def hvp_batched(loss_fn: Callable[..., jax.Array], params: PyTree, tangents: PyTree, *args) -> PyTree:
    """∇²E(θ)·vₖ for every vₖ stacked along the leading axis of ``tangents``.

    The gradient is linearized once and the linear map is vmapped over the tangents.
    """
    grad_fn = jax.grad(lambda p: loss_fn(p, *args))
    _, linear_hvp = jax.linearize(grad_fn, params)
    return jax.vmap(linear_hvp)(tangents)


def flat_hvp(loss_fn: Callable[..., jax.Array], params: PyTree, *args):
    """The Hessian as a linear map on the raveled parameter vector.

    Returns ``(matvec, x, unravel)`` with ``matvec(v) = ∇²E(θ) v`` for v of shape (p,),
    ``x`` the raveled params and ``unravel`` the inverse of ravelling. The gradient is
    linearized once, so repeated products share the forward pass.
    """
    x, unravel = ravel_pytree(params)
    flat_grad = jax.grad(lambda y: loss_fn(unravel(y), *args))
    _, matvec = jax.linearize(flat_grad, x)
    return matvec, x, unravel
