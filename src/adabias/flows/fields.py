"""Full-batch modified flows of GD, heavy ball and Adam as vector fields (CKS §2).

Every constructor returns diffrax's ``f(t, params, args=None) -> dparams/dt`` (autonomous: t
and args are unused) for an arbitrary parameter pytree; time is the optimizer's time t = n·h
(iterate θ⁽ⁿ⁾ ≈ θ(nh)). Curvature enters only
through Hessian-vector products (forward-over-reverse, one linearization of ∇E per
evaluation), never through a Hessian matrix. Notation (DESIGN §2–3): h step size,
β = ``beta1``, ρ = ``beta2``, ε inside the root, H = ∇²E, ‖v‖₁,ε = Σᵢ √(vᵢ² + ε).

Every constructor needs float64 (``jax.config.update("jax_enable_x64", True)``): the O(h²)
effects these fields describe are below float32 resolution, so with x64 off it refuses
(keyword-only ``allow_float32=True`` opts out). The first-order flows are
:class:`~adabias.flows.vector_field.ModifiedField` fields: they carry their leading and
first-order terms, which :func:`adabias.flows.solve` compares at the starting point
(:mod:`adabias.flows.regime`).

Every field is a pytree (:class:`~adabias.flows.vector_field.Formula`): the loss is static and
the numbers it uses are array leaves, computed here from h, β, ρ, ε in the same order of
operations as the formulas below. A new h or β of the same shapes therefore reuses a compiled
:func:`adabias.flows.solve`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from adabias._validation import (check_adam_hyperparameters, check_positive, check_unit_interval,
                                 require_float64)
from adabias.flows.vector_field import Field, Formula, ModifiedField, Terms

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


def _numbers(*values) -> tuple:
    """Hyperparameters as array leaves (a Python number stays weakly typed)."""
    return tuple(jnp.asarray(v) for v in values)


def _modified(rate: Callable, terms: Callable, name: str, loss_fn: LossFn, *numbers) -> ModifiedField:
    operands = (loss_fn, *_numbers(*numbers))
    return ModifiedField(Formula(rate, operands), Formula(terms, operands), name)


# --- gradient descent and heavy ball ---------------------------------------------------------


def _gd_rate(t, params, loss_fn, half_h):
    grads, h_grads = _grad_and_hvp(loss_fn, params, lambda g: g)
    return jax.tree.map(lambda g, hg: -(g + half_h * hg), grads, h_grads)


def _gd_terms(t, params, loss_fn, half_h) -> Terms:
    grads, h_grads = _grad_and_hvp(loss_fn, params, lambda g: g)
    return Terms(jax.tree.map(lambda g: -g, grads),
                 jax.tree.map(lambda hg: -(half_h * hg), h_grads))


def gd_modified(loss_fn: LossFn, learning_rate: float, *,
                allow_float32: bool = False) -> ModifiedField:
    """Barrett–Dherin modified flow of gradient descent (CKS Example 2.3, β = 0).

        θ̇ = −∇Ẽ,  Ẽ = E + (h/4)‖∇E‖²,  i.e.  θ̇ = −(∇E + (h/2) H∇E)

    using ∇‖∇E‖² = 2H∇E (one HVP).
    """
    require_float64("gd_modified", allow_float32=allow_float32)
    check_positive("learning_rate", learning_rate)
    return _modified(_gd_rate, _gd_terms, "gd_modified", loss_fn, 0.5 * learning_rate)


def _heavy_ball_rate(t, params, loss_fn, first, second):
    grads, h_grads = _grad_and_hvp(loss_fn, params, lambda g: g)
    return jax.tree.map(lambda g, hg: -(first * g + second * 2.0 * hg), grads, h_grads)


def _heavy_ball_terms(t, params, loss_fn, first, second) -> Terms:
    grads, h_grads = _grad_and_hvp(loss_fn, params, lambda g: g)
    return Terms(jax.tree.map(lambda g: -(first * g), grads),
                 jax.tree.map(lambda hg: -(second * 2.0 * hg), h_grads))


def heavy_ball_modified(loss_fn: LossFn, learning_rate: float, beta: float, *,
                        allow_float32: bool = False) -> ModifiedField:
    """Modified flow of heavy ball θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ − h∇E + β(θ⁽ⁿ⁾ − θ⁽ⁿ⁻¹⁾) (Ghosh et al.;
    CKS Example 2.3, DESIGN §3.3):

        θ̇ = −(1/(1−β)) ∇E − h(1+β)/(4(1−β)³) · ∇‖∇E‖²,   ∇‖∇E‖² = 2H∇E.

    β = 0 is :func:`gd_modified`.
    """
    require_float64("heavy_ball_modified", allow_float32=allow_float32)
    check_positive("learning_rate", learning_rate)
    check_unit_interval("beta", beta)
    first = 1.0 / (1.0 - beta)
    second = learning_rate * (1.0 + beta) / (4.0 * (1.0 - beta) ** 3)
    return _modified(_heavy_ball_rate, _heavy_ball_terms, "heavy_ball_modified", loss_fn,
                     first, second)


# --- Adam -------------------------------------------------------------------------------------


def _bias_constants(beta1, beta2, eps) -> tuple:
    """(a, c·ε) of :func:`adam_bias_coefficient`'s braces a + c·ε/(∇_jE² + ε)."""
    c = (1.0 + beta2) / (1.0 - beta2)
    return (1.0 + beta1) / (1.0 - beta1) - c, c * eps


def _coefficient(grads: PyTree, a, c_eps, eps) -> PyTree:
    return jax.tree.map(lambda g: a + c_eps / (g * g + eps), grads)


def adam_bias_coefficient(grads: PyTree, beta1: float, beta2: float, eps: float) -> PyTree:
    """The braces of CKS (2.3), leafwise:

        c_j = (1+β)/(1−β) − (1+ρ)/(1−ρ) + (1+ρ)/(1−ρ) · ε/(∇_jE² + ε).

    Its sign decides Table 1: for small ε it is ≈ (1+β)/(1−β) − (1+ρ)/(1−ρ) (> 0 iff β > ρ,
    penalizing ‖∇E‖₁), for large ε it is ≈ (1+β)/(1−β) > 0 (penalizing ‖∇E‖₂²).
    """
    return _coefficient(grads, *_bias_constants(beta1, beta2, eps), eps)


def _normalized(grads: PyTree, eps) -> PyTree:
    """∇E/√(∇E² + ε), whose HVP is ∇‖∇E‖₁,ε."""
    return jax.tree.map(lambda g: g / jnp.sqrt(g * g + eps), grads)


def _adam_grads_and_bias(loss_fn, params, half_h, a, c_eps, eps):
    grads, grad_norm1 = _grad_and_hvp(loss_fn, params, lambda g: _normalized(g, eps))
    coefficient = _coefficient(grads, a, c_eps, eps)
    bias = jax.tree.map(lambda c, d: half_h * c * d, coefficient, grad_norm1)
    return grads, bias


def _adam_constants(learning_rate, beta1, beta2, eps) -> tuple:
    """(h/2, a, c·ε, ε): the numbers the Adam fields use."""
    return (0.5 * learning_rate, *_bias_constants(beta1, beta2, eps), eps)


def _adam_bias_rate(t, params, loss_fn, *constants):
    return _adam_grads_and_bias(loss_fn, params, *constants)[1]


def _adam_rate(t, params, loss_fn, *constants):
    eps = constants[-1]
    grads, bias = _adam_grads_and_bias(loss_fn, params, *constants)
    return jax.tree.map(lambda g, b: -(g + b) / jnp.sqrt(g * g + eps), grads, bias)


def _adam_terms(t, params, loss_fn, *constants) -> Terms:
    eps = constants[-1]
    grads, bias = _adam_grads_and_bias(loss_fn, params, *constants)
    root = jax.tree.map(lambda g: jnp.sqrt(g * g + eps), grads)
    return Terms(jax.tree.map(lambda g, r: -g / r, grads, root),
                 jax.tree.map(lambda b, r: -b / r, bias, root))


def _sign_gd_rate(t, params, loss_fn, eps):
    grads = jax.grad(loss_fn)(params)
    return jax.tree.map(lambda g: -g / jnp.sqrt(g * g + eps), grads)


def adam_bias(loss_fn: LossFn, learning_rate: float, beta1: float, beta2: float,
              eps: float, *, allow_float32: bool = False) -> Field:
    """The bias term of CKS (2.3) as a field ``f(t, params, args=None) -> bias``:

        bias_j = (h/2) · c_j · ∇_j‖∇E‖₁,ε,   ∇‖∇E‖₁,ε = H (∇E/√(∇E² + ε))   (one HVP),

    with c_j from :func:`adam_bias_coefficient`. Adam's modified flow (2.2) is
    θ̇ = −(∇E + bias)/√(∇E² + ε).
    """
    require_float64("adam_bias", allow_float32=allow_float32)
    check_adam_hyperparameters(learning_rate, beta1, beta2, eps)
    constants = _adam_constants(learning_rate, beta1, beta2, eps)
    return Formula(_adam_bias_rate, (loss_fn, *_numbers(*constants)))


def adam_full_batch(loss_fn: LossFn, learning_rate: float, beta1: float, beta2: float,
                    eps: float, *, order: int = 1, allow_float32: bool = False) -> Field:
    """Full-batch modified flow of bias-corrected Adam, CKS (2.2)–(2.3) (DESIGN §3.2).

    ``order=1``:
        θ̇_j = −(∇_jE + bias_j)/√(∇_jE² + ε),
        bias_j = (h/2){(1+β)/(1−β) − (1+ρ)/(1−ρ) + (1+ρ)/(1−ρ)·ε/(∇_jE² + ε)} ∇_j‖∇E‖₁,ε,
        ∇‖∇E‖₁,ε = H(∇E/√(∇E² + ε))  (one HVP);
      a :class:`~adabias.flows.vector_field.ModifiedField` (leading −∇E/√(∇E² + ε),
      correction −bias/√(∇E² + ε)).
    ``order=0``: ε-signGD θ̇ = −∇E/√(∇E² + ε) (Ma et al.), Adam's leading-order flow.

    Adam's iterate θ⁽ⁿ⁾ is tracked by θ(nh) with error O(h²) (order 1), O(h) (order 0).
    """
    require_float64("adam_full_batch", allow_float32=allow_float32)
    check_adam_hyperparameters(learning_rate, beta1, beta2, eps)
    if order not in (0, 1):
        raise ValueError(f"order must be 0 or 1, got order={order!r}")
    if order == 0:
        return Formula(_sign_gd_rate, (loss_fn, *_numbers(eps)))
    return _modified(_adam_rate, _adam_terms, "adam_full_batch", loss_fn,
                     *_adam_constants(learning_rate, beta1, beta2, eps))


# --- Adam's limits in ε -------------------------------------------------------------------------


def _small_eps_parts(loss_fn, params):
    return _grad_and_hvp(loss_fn, params, lambda g: jax.tree.map(jnp.sign, g))


def _small_eps_rate(t, params, loss_fn, scale):
    return jax.tree.map(lambda g, d: -(jnp.sign(g) + scale * d / jnp.abs(g)),
                        *_small_eps_parts(loss_fn, params))


def _small_eps_terms(t, params, loss_fn, scale) -> Terms:
    grads, grad_norm1 = _small_eps_parts(loss_fn, params)
    return Terms(jax.tree.map(lambda g: -jnp.sign(g), grads),
                 jax.tree.map(lambda g, d: -(scale * d / jnp.abs(g)), grads, grad_norm1))


def adam_small_eps_limit(loss_fn: LossFn, learning_rate: float, beta1: float,
                         beta2: float, *, allow_float32: bool = False) -> ModifiedField:
    """Adam's modified flow when √ε ≪ minⱼ|∇_jE|, CKS (2.4)/(2.5):

        θ̇ = −(∇E + (h/2){(1+β)/(1−β) − (1+ρ)/(1−ρ)} ∇‖∇E‖₁) / |∇E|,
        ∇‖∇E‖₁ = H sign(∇E)  (one HVP), ∇E/|∇E| = sign(∇E)  (elementwise).

    The flow of a perturbed sign-GD that penalizes ‖∇E‖₁ when β > ρ and −‖∇E‖₁ when
    ρ > β. Singular where a gradient entry vanishes.
    """
    require_float64("adam_small_eps_limit", allow_float32=allow_float32)
    check_positive("learning_rate", learning_rate)
    check_unit_interval("beta1", beta1)
    check_unit_interval("beta2", beta2)
    a = (1.0 + beta1) / (1.0 - beta1) - (1.0 + beta2) / (1.0 - beta2)
    return _modified(_small_eps_rate, _small_eps_terms, "adam_small_eps_limit", loss_fn,
                     0.5 * learning_rate * a)


def _large_eps_rate(t, params, loss_fn, root, coefficient):
    grads, h_grads = _grad_and_hvp(loss_fn, params, lambda g: g)
    return jax.tree.map(lambda g, hg: -(g + coefficient * hg) / root, grads, h_grads)


def _large_eps_terms(t, params, loss_fn, root, coefficient) -> Terms:
    grads, h_grads = _grad_and_hvp(loss_fn, params, lambda g: g)
    return Terms(jax.tree.map(lambda g: -g / root, grads),
                 jax.tree.map(lambda hg: -(coefficient * hg) / root, h_grads))


def adam_large_eps_limit(loss_fn: LossFn, learning_rate: float, beta1: float,
                         eps: float, *, allow_float32: bool = False) -> ModifiedField:
    """Adam's modified flow when √ε ≫ maxⱼ|∇_jE|, CKS (2.6)/(2.7):

        θ̇ = −∇Ẽ,  Ẽ = (1/√ε)(E + h/(4√ε) · (1+β)/(1−β) · ‖∇E‖²),
        i.e.  θ̇ = −(1/√ε)(∇E + h/(2√ε) · (1+β)/(1−β) · H∇E).

    This is heavy ball with step h(1−β)/√ε and momentum β (Example 2.3) in Adam's time;
    it does not depend on ρ.
    """
    require_float64("adam_large_eps_limit", allow_float32=allow_float32)
    check_positive("learning_rate", learning_rate)
    check_unit_interval("beta1", beta1)
    check_positive("eps", eps)
    root = jnp.sqrt(eps)
    coefficient = learning_rate / (2.0 * root) * (1.0 + beta1) / (1.0 - beta1)
    return _modified(_large_eps_rate, _large_eps_terms, "adam_large_eps_limit", loss_fn,
                     root, coefficient)
