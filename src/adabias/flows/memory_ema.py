"""Closed forms of the memory-corrected flow (DESIGN §3.6) for ``ab.optim``'s EMA transforms.

An :class:`EMAForm` is an update −h·U(m, v) of two exponential moving averages, m of the
gradients g and v of a statistic φ(g) (g⊙g for Adam, V(g⊙g) for an AGM):

    m = Σₖ aₖ gₙ₋ₖ,  aₖ = (1−β₁)β₁ᵏ/c₁,   v = Σₖ bₖ φ(gₙ₋ₖ) + β₂ⁿ⁺¹v₀/c₂,  bₖ = (1−β₂)β₂ᵏ/c₂,

k = 0 … n, cᵢ = 1 − βᵢⁿ⁺¹ with bias correction and 1 without. The frozen replay is
F̄ₙ = U(A g, B φ(g) + β₂ⁿ⁺¹v₀/c₂) with A = Σaₖ, B = Σbₖ, and the correction Mₙ + ½DF̄ₙ·F̄ₙ of
:func:`adabias.flows.memory_corrected` is one jvp of U,

    ∂U·((Σ(k+½)aₖ)·HF̄ₙ, (Σ(k+½)bₖ)·Dφ(g)HF̄ₙ),
    Σₖ k·(1−β)βᵏ = β(1−βⁿ)/(1−β) − nβⁿ⁺¹   (→ β/(1−β); with bias correction divided by c),

so a right-hand side costs a gradient, an HVP and element-wise work, for any β (the replay
costs W ≈ 40/(1−β) optimizer updates). Bias-corrected Adam gives β/(1−β) − (n+1)βⁿ⁺¹/(1−βⁿ⁺¹),
whose limit is CKS (2.3); heavy ball (m/(1−β), no bias correction) gives Example 2.3 after
its zero-momentum transient.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from adabias._validation import check_positive, check_unit_interval, require_x64
from adabias.flows.memory import check_order, skips_correction
from adabias.flows.vector_field import PiecewiseField, step_index
from adabias.optim.agm import inverse_root

PyTree = Any
LossFn = Callable[[PyTree], jax.Array]

__all__ = ["EMAForm", "adam_ema_form", "agm_ema_form", "heavy_ball_ema_form",
           "ema_weight_sums", "memory_corrected_ema"]


class EMAForm(NamedTuple):
    """An optimizer whose update is −h·U(m, v) (module docstring).

    ``direction(m, v)`` is U; ``statistic(g)`` is φ(g); ``initial_v`` is v₀ (a number or a
    pytree shaped like φ(g)); m starts at zero.
    """

    beta1: Any
    beta2: Any
    direction: Callable[[PyTree, PyTree], PyTree]
    statistic: Callable[[PyTree], PyTree]
    bias_correction: bool
    initial_v: Any = 0.0


def _square(grads: PyTree) -> PyTree:
    return jax.tree.map(jnp.square, grads)


def adam_ema_form(beta1: float, beta2: float, eps: float, *, eps_inside_sqrt: bool = True,
                  bias_correction: bool = True) -> EMAForm:
    """``ab.optim.adam`` (and ``rmsprop``: β₁ = 0) with the same arguments: U = m/√(v + ε)
    or m/(√v + ε), φ(g) = g⊙g."""
    check_unit_interval("beta1", beta1)
    check_unit_interval("beta2", beta2)
    check_positive("eps", eps)
    scale = inverse_root(eps, eps_inside_sqrt=eps_inside_sqrt)
    return EMAForm(beta1, beta2, lambda m, v: jax.tree.map(jnp.multiply, scale(v), m), _square,
                   bias_correction)


def agm_ema_form(beta1: float, beta2: float, V: Callable, S: Callable, *,
                 initial_v: Any = 0.0) -> EMAForm:
    """``ab.optim.agm(h, beta1, beta2, V, S, initial_v=…)`` (and so ``adame``, ``adam_mini``,
    ``adalayer`` with their V and S): U = S(v)⊙m, φ(g) = V(g⊙g), no bias correction."""
    check_unit_interval("beta1", beta1)
    check_unit_interval("beta2", beta2)
    return EMAForm(beta1, beta2, lambda m, v: jax.tree.map(jnp.multiply, S(v), m),
                   lambda g: V(_square(g)), False, initial_v)


def heavy_ball_ema_form(beta: float) -> EMAForm:
    """``ab.optim.heavy_ball(h, beta)`` (``optax.sgd(h, momentum=β)``; β = 0: ``gd``):
    U = m/(1−β), m the uncorrected EMA of g, so F = Σₖ βᵏ gₙ₋ₖ."""
    check_unit_interval("beta", beta)
    return EMAForm(beta, 0.0, lambda m, v: jax.tree.map(lambda x: x / (1.0 - beta), m),
                   lambda g: g, False)


def ema_weight_sums(beta: Any, n: jax.Array, *, bias_correction: bool) -> tuple:
    """(Σₖ wₖ, Σₖ k·wₖ) over k = 0 … n for wₖ = (1−β)βᵏ, divided by 1 − βⁿ⁺¹ with bias
    correction: (1, β/(1−β) − (n+1)βⁿ⁺¹/(1−βⁿ⁺¹)) then, (1 − βⁿ⁺¹, β(1−βⁿ)/(1−β) − nβⁿ⁺¹)
    without."""
    dtype = jnp.result_type(float)
    beta = jnp.asarray(beta, dtype)
    n = jnp.asarray(n, dtype)
    safe = jnp.where(beta > 0, beta, 0.5)
    one_minus = lambda power: jnp.where(beta > 0, -jnp.expm1(power * jnp.log(safe)), 1.0)
    total = one_minus(n + 1)                                       # 1 − βⁿ⁺¹
    first = beta * one_minus(n) / (1.0 - beta) - n * beta ** (n + 1)
    if bias_correction:
        return jnp.ones_like(total), first / total
    return total, first


def _initial_weight(form: EMAForm, n: jax.Array) -> jax.Array:
    """β₂ⁿ⁺¹/c₂: what is left of v₀ after n+1 steps."""
    beta2 = jnp.asarray(form.beta2, jnp.result_type(float))
    left = beta2 ** (n + 1).astype(beta2.dtype)
    return left / (1.0 - left) if form.bias_correction else left


def _initial_v(form: EMAForm, like: PyTree) -> PyTree:
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(form.initial_v)):
        return jax.tree.map(lambda s: jnp.full_like(s, form.initial_v), like)
    return form.initial_v


def memory_corrected_ema(form: EMAForm, loss_fn: LossFn, h: Any, order: int = 1
                         ) -> PiecewiseField:
    """The field of :func:`adabias.flows.memory_corrected` for an optimizer given by its
    :class:`EMAForm` (module docstring): the same flow, in closed form.

    ``h`` is the optimizer's learning rate; ``order=0`` gives θ̇ = −F̄ₙ (a traced 0/1
    multiplies the correction). With bias correction
    and βⁿ⁺¹, ρⁿ⁺¹ below float64 resolution, Adam's field is CKS (2.2)–(2.3)
    (:func:`adabias.flows.adam_full_batch`). Returns a :class:`~adabias.flows.PiecewiseField`.
    """
    require_x64("memory_corrected_ema")
    order = check_order(order)
    check_positive("h", h)
    if not isinstance(form, EMAForm):
        raise TypeError(f"form must be an EMAForm, got {type(form).__name__}")

    def vector_field(t, params: PyTree, args=None) -> PyTree:
        n = step_index(jnp.asarray(t, jnp.result_type(float)), h)
        grads, hvp = jax.linearize(jax.grad(loss_fn), params)
        a_sum, a_first = ema_weight_sums(form.beta1, n, bias_correction=form.bias_correction)
        b_sum, b_first = ema_weight_sums(form.beta2, n, bias_correction=form.bias_correction)
        statistic, d_statistic = jax.linearize(form.statistic, grads)
        m = jax.tree.map(lambda g: a_sum * g, grads)
        v = jax.tree.map(lambda s, s0: b_sum * s + _initial_weight(form, n) * s0,
                         statistic, _initial_v(form, statistic))
        mean, d_direction = jax.linearize(form.direction, m, v)                  # F̄ₙ
        if skips_correction(order):
            return jax.tree.map(jnp.negative, mean)
        h_mean = hvp(mean)
        correction = d_direction(jax.tree.map(lambda x: (a_first + 0.5 * a_sum) * x, h_mean),
                                 jax.tree.map(lambda x: (b_first + 0.5 * b_sum) * x,
                                              d_statistic(h_mean)))
        return jax.tree.map(lambda f, c: -(f + order * h * c), mean, correction)

    return PiecewiseField(vector_field, h)
