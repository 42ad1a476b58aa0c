"""Mini-batch Adam's piecewise modified flow, CKS Theorem 3.1 (DESIGN §3.4).

Bias-corrected exponential average AV_γⁿ[a_·] = (1/(1−γⁿ⁺¹)) Σ_{k=0}^{n} γⁿ⁻ᵏ(1−γ) a_k;
step k uses data batch k mod m (E_k its loss). On t ∈ [nh, (n+1)h):

    θ̇_j = −M_j/R_j + h ( M_j(2P_j + P̄_j)/(2R_j³) − (2L_j + L̄_j)/(2R_j) )          (3.2)
    M = AV_βⁿ[∇E_·(θ)],  R = √(AV_ρⁿ[(∇E_·(θ))²] + ε),  q_l = M⁽ˡ⁾/R⁽ˡ⁾,
    L = AV_βⁿ[H_k S_k],  L̄ = AV_βⁿ[H_k q_n],  P = AV_ρⁿ[∇E_k ⊙ H_k S_k],
    P̄ = AV_ρⁿ[∇E_k ⊙ H_k q_n],  S_k = Σ_{l=k}^{n−1} q_l,  H_k = ∇²E_k(θ),

everything at the current θ. Cost of one right-hand side (no O(n²)):

1. the m batch gradients g_b (one vmapped gradient);
2. q_l for every l of a window by the EMA recursions (a ``lax.scan``, O(W·p));
3. the suffix sums S_k (a reversed cumulative sum) and per-batch aggregates
   u_b = Σ_{k≡b} w_k S_k, W_b = Σ_{k≡b} w_k (``segment_sum``, O(W·p)), so that
   2L + L̄ = Σ_b H_b(2u_b + W_b q_n) and 2P + P̄ = Σ_b g_b ⊙ H_b(2v_b + W'_b q_n)
   (w: β-weights, v, W': ρ-weights);
4. two HVPs per batch (the gradient of E_b linearized once, vmapped over 2 tangents).

**Window (static shapes, jittable in t).** The averaging indices k are restricted to the
last W steps n−W+1 … n. Exact choice: ``num_steps=N`` and ``truncation=0`` give W = N+1,
exact for every n ≤ N. Default (``truncation=1e-17``): EMA weights γ^K < 1e-17 (below
float64 resolution relative to the leading weight) are dropped, K = ⌈log(1e-17)/log γ⌉,
γ = max(β, ρ), W = 2K+2 (K for the outer average plus K so that every q_l it uses is
itself exact to 1e-17); if ``num_steps`` is given, W = min(N+1, 2K+2), and the field is
exact whenever W = N+1. Tests check the truncated and exact fields agree to ~1e-15.

**Pieces.** n is the largest integer with fl(n·h) ≤ t (n ≥ 0,
:func:`adabias.flows.step_index`), i.e. the pieces are [t_n, t_{n+1}) on the grid
t_n = fl(n·h). :func:`adam_minibatch` returns a :class:`~adabias.flows.PiecewiseField`
carrying h, so :func:`adabias.flows.solve` and :func:`adabias.flows.solve_steps` place the
solver's jumps on that grid. Compare θ(t_n) with Adam's iterate θ⁽ⁿ⁾.

The field is a pytree (:class:`~adabias.flows.vector_field.Formula`): the loss, the window and
m are static; h, β, ρ, ε and the batches are leaves, so :func:`adabias.flows.solve` reuses its
compilation for a new h (the window depends on β, ρ and ``num_steps``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from adabias._validation import (check_adam_hyperparameters, check_batches, is_concrete,
                                 require_float64)
from adabias.flows.vector_field import (Formula, ModifiedField, PiecewiseField, Terms,
                                        step_index)
from adabias.measures.hvp import hvp_batched

PyTree = Any

__all__ = ["adam_minibatch", "window_size"]


def window_size(beta1: float, beta2: float, *, num_steps: Optional[int] = None,
                truncation: float = 1e-17) -> int:
    """The static number W of most recent steps the field averages over (module doc)."""
    if num_steps is not None and (not isinstance(num_steps, int) or num_steps < 0):
        raise ValueError(f"num_steps must be a non-negative int, got num_steps={num_steps!r}")
    if truncation < 0 or truncation >= 1:
        raise ValueError(f"truncation must lie in [0, 1), got truncation={truncation!r}")
    exact = None if num_steps is None else num_steps + 1
    if truncation == 0 or not (is_concrete(beta1) and is_concrete(beta2)):
        if exact is None:
            raise ValueError(
                "num_steps is required without truncation (truncation=0 or traced betas)"
            )
        return exact
    gamma = max(float(beta1), float(beta2))
    k = 1 if gamma == 0.0 else max(1, math.ceil(math.log(truncation) / math.log(gamma)))
    truncated = 2 * k + 2
    return truncated if exact is None else min(exact, truncated)


class _Prepared:
    """Shared per-evaluation quantities: flat params, batch gradients, window EMAs."""

    def __init__(self, loss_fn, batches, num_batches, h, beta1, beta2, eps, window, t, params):
        x, self.unravel = ravel_pytree(params)
        self.x = x
        self.flat_loss = lambda y, batch: loss_fn(self.unravel(y), batch)
        # 1. batch gradients g_b, shape (m, p)
        self.grads = jax.vmap(jax.grad(self.flat_loss), in_axes=(None, 0))(x, batches)
        n = step_index(jnp.asarray(t, dtype=x.dtype), h)
        self.n = n
        offsets = jnp.arange(window)                    # j; absolute step k = n − W + 1 + j
        steps = n - (window - 1) + offsets
        self.valid = steps >= 0
        self.batch_of = jnp.mod(steps, num_batches)
        a = jnp.where(self.valid[:, None], self.grads[self.batch_of], 0.0)

        # 2. q_l for l in the window (EMAs started at zero before the window)
        def ema(carry, inputs):
            mm, vv = carry
            a_k, k, ok = inputs
            mm = beta1 * mm + (1.0 - beta1) * a_k
            vv = beta2 * vv + (1.0 - beta2) * a_k * a_k
            c1 = jnp.where(ok, 1.0 - beta1 ** (k + 1).astype(x.dtype), 1.0)
            c2 = jnp.where(ok, 1.0 - beta2 ** (k + 1).astype(x.dtype), 1.0)
            big_m = mm / c1
            big_r = jnp.sqrt(vv / c2 + eps)
            return (mm, vv), (big_m / big_r, big_m, big_r)

        zeros = jnp.zeros_like(x)
        _, (q, big_m, big_r) = jax.lax.scan(ema, (zeros, zeros), (a, steps, self.valid))
        self.q = q
        self.m_n, self.r_n, self.q_n = big_m[-1], big_r[-1], q[-1]


def _zeroth_rate(t, params, loss_fn, batches, h, eps, beta1, beta2, *, num_batches, window):
    s = _Prepared(loss_fn, batches, num_batches, h, beta1, beta2, eps, window, t, params)
    return s.unravel(-s.q_n)


def _rates(t, params, loss_fn, batches, h, eps, beta1, beta2, *, num_batches, window):
    """(leading, correction) of (3.2) on raveled params, and the unravel."""
    s = _Prepared(loss_fn, batches, num_batches, h, beta1, beta2, eps, window, t, params)
    dtype = s.x.dtype
    n = s.n.astype(dtype)
    # 3. suffix sums S_k = Σ_{l=k}^{n−1} q_l (q_n excluded; invalid q are zero)
    q_before = s.q.at[-1].set(0.0)
    suffix = jnp.cumsum(q_before[::-1], axis=0)[::-1]

    lags = jnp.arange(window - 1, -1, -1)            # decay powers γ^(n−k) = γ^(W−1−j)

    def weights(gamma):
        w = (1.0 - gamma) * gamma ** lags.astype(dtype) / (1.0 - gamma ** (n + 1.0))
        return jnp.where(s.valid, w, 0.0)

    w_beta, w_rho = weights(beta1), weights(beta2)
    seg = lambda v: jax.ops.segment_sum(v, s.batch_of, num_segments=num_batches)
    u = seg(w_beta[:, None] * suffix)                    # (m, p)
    v = seg(w_rho[:, None] * suffix)
    tangent_l = 2.0 * u + seg(w_beta)[:, None] * s.q_n[None, :]
    tangent_p = 2.0 * v + seg(w_rho)[:, None] * s.q_n[None, :]
    # 4. two HVPs per batch
    tangents = jnp.stack([tangent_l, tangent_p], axis=1)   # (m, 2, p)
    products = jax.vmap(lambda batch, tans: hvp_batched(s.flat_loss, s.x, tans, batch))(
        batches, tangents)
    two_l_plus = jnp.sum(products[:, 0], axis=0)             # 2L + L̄
    two_p_plus = jnp.sum(s.grads * products[:, 1], axis=0)   # 2P + P̄
    m_n, r_n = s.m_n, s.r_n
    correction = h * (m_n * two_p_plus / (2.0 * r_n**3) - two_l_plus / (2.0 * r_n))
    return -m_n / r_n, correction, s.unravel


def _rate(t, params, *operands, **options):
    leading, correction, unravel = _rates(t, params, *operands, **options)
    return unravel(leading + correction)


def _terms(t, params, *operands, **options) -> Terms:
    leading, correction, unravel = _rates(t, params, *operands, **options)
    return Terms(unravel(leading), unravel(correction))


def adam_minibatch(
    loss_fn: Callable[[PyTree, PyTree], jax.Array],
    batches: PyTree,
    learning_rate: float,
    beta1: float,
    beta2: float,
    eps: float,
    *,
    order: int = 1,
    num_steps: Optional[int] = None,
    truncation: float = 1e-17,
    allow_float32: bool = False,
) -> PiecewiseField:
    """Modified flow of cyclic mini-batch Adam, CKS Theorem 3.1, eq. (3.2).

    ``order=1``: (3.2), tracking Adam's iterates to O(h²); its field is a
    :class:`~adabias.flows.vector_field.ModifiedField` (leading −M⁽ⁿ⁾/R⁽ⁿ⁾, correction the
    h-term) inside the :class:`~adabias.flows.PiecewiseField`. ``order=0``: θ̇ = −M⁽ⁿ⁾/R⁽ⁿ⁾
    on [nh, (n+1)h) (3.2 without its h-term), O(h).

    Args:
      loss_fn: ``loss_fn(params, batch)``, E_k = loss_fn(·, batch k mod m).
      batches: pytree whose leaves have leading axis m.
      learning_rate, beta1, beta2, eps: h, β, ρ, ε of bias-corrected Adam (2.1).
      order: 1 or 0.
      num_steps: the horizon N the flow is integrated over (t ≤ N·h); with it the window
        is at most N+1 steps (exact).
      truncation: drop EMA weights below this (static window; 0 = exact, needs num_steps).
      allow_float32: build the field with x64 off (refused by default: DESIGN §2).

    Returns:
      ``f(t, params, args=None) -> dparams/dt`` as a :class:`~adabias.flows.PiecewiseField`
      with step size h: the formula changes with n = step_index(t, h).
      Cost per evaluation: one vmapped gradient over the m batches, O(W·p) EMA work and
      (order 1) 2m HVPs; see the module docstring.
    """
    require_float64("adam_minibatch", allow_float32=allow_float32)
    check_adam_hyperparameters(learning_rate, beta1, beta2, eps)
    if order not in (0, 1):
        raise ValueError(f"order must be 0 or 1, got order={order!r}")
    num_batches = check_batches(batches)
    window = window_size(beta1, beta2, num_steps=num_steps, truncation=truncation)
    h = jnp.asarray(learning_rate)
    operands = (loss_fn, batches, h, jnp.asarray(eps))
    options = (("num_batches", num_batches), ("window", window))
    # β and ρ set the window, a static shape: static numbers too (constants of the compiled
    # program, as XLA simplifies with them), unless traced (num_steps given)
    if is_concrete(beta1) and is_concrete(beta2):
        options += (("beta1", float(beta1)), ("beta2", float(beta2)))
    else:
        operands += (beta1, beta2)
    if order == 0:
        return PiecewiseField(Formula(_zeroth_rate, operands, options), h)
    return PiecewiseField(ModifiedField(Formula(_rate, operands, options),
                                        Formula(_terms, operands, options), "adam_minibatch"), h)
