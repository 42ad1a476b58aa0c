"""Full-batch modified flows of GD, heavy ball and Adam as vector fields (CKS §2).

Every constructor returns diffrax's ``f(t, params, args=None) -> dparams/dt`` (autonomous: t
and args are unused) for an arbitrary parameter pytree; time is the optimizer's time t = n·h
(iterate θ⁽ⁿ⁾ ≈ θ(nh)). Curvature enters only
through Hessian-vector products (forward-over-reverse, one linearization of ∇E per
evaluation), never through a Hessian matrix. Notation (DESIGN §2–3): h step size,
β = ``beta1``, ρ = ``beta2``, ε inside the root, H = ∇²E, ‖v‖₁,ε = Σᵢ √(vᵢ² + ε).

Use float64 (``jax.config.update("jax_enable_x64", True)``) when comparing flows with
iterates: the O(h²) effects these fields describe are below float32 resolution.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from adabias._validation import check_positive, check_unit_interval
from adabias.flows.vector_field import Field

PyTree = Any
LossFn = Callable[[PyTree], jax.Array]

__all__ = [
    "gd_modified",
    "heavy_ball_modified",
    "adam_full_batch",
    "adam_small_eps_limit",
    "adam_large_eps_limit",
    "adam_bias",
    "adam_bias_coefficient",
]


def _grad_and_hvp(loss_fn: LossFn, params: PyTree, tangent_of: Callable[[PyTree], PyTree]):
    """(∇E, H·v) with v = ``tangent_of(∇E)``: ∇E is linearized once and reused."""
    grads, linear_hvp = jax.linearize(jax.grad(loss_fn), params)
    return grads, linear_hvp(tangent_of(grads))


def _check_common(learning_rate, beta1=None, beta2=None, eps=None) -> None:
    check_positive("learning_rate", learning_rate)
    if beta1 is not None:
        check_unit_interval("beta1", beta1)
    if beta2 is not None:
        check_unit_interval("beta2", beta2)
    if eps is not None:
        check_positive("eps", eps)


def gd_modified(loss_fn: LossFn, learning_rate: float) -> Field:
    """Barrett–Dherin modified flow of gradient descent (CKS Example 2.3, β = 0).

        θ̇ = −∇Ẽ,  Ẽ = E + (h/4)‖∇E‖²,  i.e.  θ̇ = −(∇E + (h/2) H∇E)

    using ∇‖∇E‖² = 2H∇E (one HVP).
    """
    _check_common(learning_rate)
    h = learning_rate

    def field(t, params: PyTree, args=None) -> PyTree:
        grads, h_grads = _grad_and_hvp(loss_fn, params, lambda g: g)
        return jax.tree.map(lambda g, hg: -(g + 0.5 * h * hg), grads, h_grads)

    return field


def heavy_ball_modified(loss_fn: LossFn, learning_rate: float, beta: float) -> Field:
    """Modified flow of heavy ball θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ − h∇E + β(θ⁽ⁿ⁾ − θ⁽ⁿ⁻¹⁾) (Ghosh et al.;
    CKS Example 2.3, DESIGN §3.3):

        θ̇ = −(1/(1−β)) ∇E − h(1+β)/(4(1−β)³) · ∇‖∇E‖²,   ∇‖∇E‖² = 2H∇E.

    β = 0 is :func:`gd_modified`.
    """
    _check_common(learning_rate)
    check_unit_interval("beta", beta)
    h = learning_rate

    def field(t, params: PyTree, args=None) -> PyTree:
        grads, h_grads = _grad_and_hvp(loss_fn, params, lambda g: g)
        first = 1.0 / (1.0 - beta)
        second = h * (1.0 + beta) / (4.0 * (1.0 - beta) ** 3)
        return jax.tree.map(lambda g, hg: -(first * g + second * 2.0 * hg), grads, h_grads)

    return field


def adam_bias_coefficient(grads: PyTree, beta1: float, beta2: float, eps: float) -> PyTree:
    """The braces of CKS (2.3), leafwise:

        c_j = (1+β)/(1−β) − (1+ρ)/(1−ρ) + (1+ρ)/(1−ρ) · ε/(∇_jE² + ε).

    Its sign decides Table 1: for small ε it is ≈ (1+β)/(1−β) − (1+ρ)/(1−ρ) (> 0 iff β > ρ,
    penalizing ‖∇E‖₁), for large ε it is ≈ (1+β)/(1−β) > 0 (penalizing ‖∇E‖₂²).
    """
    a = (1.0 + beta1) / (1.0 - beta1) - (1.0 + beta2) / (1.0 - beta2)
    c = (1.0 + beta2) / (1.0 - beta2)
    return jax.tree.map(lambda g: a + c * eps / (g * g + eps), grads)


def _normalized(grads: PyTree, eps) -> PyTree:
    """∇E/√(∇E² + ε), whose HVP is ∇‖∇E‖₁,ε."""
    return jax.tree.map(lambda g: g / jnp.sqrt(g * g + eps), grads)


def _adam_grads_and_bias(loss_fn, params, h, beta1, beta2, eps):
    grads, grad_norm1 = _grad_and_hvp(loss_fn, params, lambda g: _normalized(g, eps))
    coefficient = adam_bias_coefficient(grads, beta1, beta2, eps)
    bias = jax.tree.map(lambda c, d: 0.5 * h * c * d, coefficient, grad_norm1)
    return grads, bias


def adam_bias(loss_fn: LossFn, learning_rate: float, beta1: float, beta2: float,
              eps: float) -> Field:
    """The bias term of CKS (2.3) as a field ``f(t, params, args=None) -> bias``:

        bias_j = (h/2) · c_j · ∇_j‖∇E‖₁,ε,   ∇‖∇E‖₁,ε = H (∇E/√(∇E² + ε))   (one HVP),

    with c_j from :func:`adam_bias_coefficient`. Adam's modified flow (2.2) is
    θ̇ = −(∇E + bias)/√(∇E² + ε).
    """
    _check_common(learning_rate, beta1, beta2, eps)

    def field(t, params: PyTree, args=None) -> PyTree:
        return _adam_grads_and_bias(loss_fn, params, learning_rate, beta1, beta2, eps)[1]

    return field


def adam_full_batch(loss_fn: LossFn, learning_rate: float, beta1: float, beta2: float,
                    eps: float, *, order: int = 1) -> Field:
    """Full-batch modified flow of bias-corrected Adam, CKS (2.2)–(2.3) (DESIGN §3.2).

    ``order=1``:
        θ̇_j = −(∇_jE + bias_j)/√(∇_jE² + ε),
        bias_j = (h/2){(1+β)/(1−β) − (1+ρ)/(1−ρ) + (1+ρ)/(1−ρ)·ε/(∇_jE² + ε)} ∇_j‖∇E‖₁,ε,
        ∇‖∇E‖₁,ε = H(∇E/√(∇E² + ε))  (one HVP).
    ``order=0``: ε-signGD θ̇ = −∇E/√(∇E² + ε) (Ma et al.), Adam's leading-order flow.

    Adam's iterate θ⁽ⁿ⁾ is tracked by θ(nh) with error O(h²) (order 1), O(h) (order 0).
    """
    _check_common(learning_rate, beta1, beta2, eps)
    if order not in (0, 1):
        raise ValueError(f"order must be 0 or 1, got order={order!r}")

    if order == 0:
        def field0(t, params: PyTree, args=None) -> PyTree:
            grads = jax.grad(loss_fn)(params)
            return jax.tree.map(lambda g: -g / jnp.sqrt(g * g + eps), grads)

        return field0

    def field(t, params: PyTree, args=None) -> PyTree:
        grads, bias = _adam_grads_and_bias(loss_fn, params, learning_rate, beta1, beta2, eps)
        return jax.tree.map(lambda g, b: -(g + b) / jnp.sqrt(g * g + eps), grads, bias)

    return field


def adam_small_eps_limit(loss_fn: LossFn, learning_rate: float, beta1: float,
                         beta2: float) -> Field:
    """Adam's modified flow when √ε ≪ minⱼ|∇_jE|, CKS (2.4)/(2.5):

        θ̇ = −(∇E + (h/2){(1+β)/(1−β) − (1+ρ)/(1−ρ)} ∇‖∇E‖₁) / |∇E|,
        ∇‖∇E‖₁ = H sign(∇E)  (one HVP), ∇E/|∇E| = sign(∇E)  (elementwise).

    The flow of a perturbed sign-GD that penalizes ‖∇E‖₁ when β > ρ and −‖∇E‖₁ when
    ρ > β. Singular where a gradient entry vanishes.
    """
    _check_common(learning_rate, beta1, beta2)
    a = (1.0 + beta1) / (1.0 - beta1) - (1.0 + beta2) / (1.0 - beta2)

    def field(t, params: PyTree, args=None) -> PyTree:
        grads, grad_norm1 = _grad_and_hvp(loss_fn, params, lambda g: jax.tree.map(jnp.sign, g))
        return jax.tree.map(
            lambda g, d: -(jnp.sign(g) + 0.5 * learning_rate * a * d / jnp.abs(g)),
            grads, grad_norm1,
        )

    return field


def adam_large_eps_limit(loss_fn: LossFn, learning_rate: float, beta1: float,
                         eps: float) -> Field:
    """Adam's modified flow when √ε ≫ maxⱼ|∇_jE|, CKS (2.6)/(2.7):

        θ̇ = −∇Ẽ,  Ẽ = (1/√ε)(E + h/(4√ε) · (1+β)/(1−β) · ‖∇E‖²),
        i.e.  θ̇ = −(1/√ε)(∇E + h/(2√ε) · (1+β)/(1−β) · H∇E).

    This is heavy ball with step h(1−β)/√ε and momentum β (Example 2.3) in Adam's time;
    it does not depend on ρ.
    """
    _check_common(learning_rate, beta1, eps=eps)
    root = jnp.sqrt(eps)

    def field(t, params: PyTree, args=None) -> PyTree:
        grads, h_grads = _grad_and_hvp(loss_fn, params, lambda g: g)
        coefficient = learning_rate / (2.0 * root) * (1.0 + beta1) / (1.0 - beta1)
        return jax.tree.map(lambda g, hg: -(g + coefficient * hg) / root, grads, h_grads)

    return field
