"""The modified flow of any optimizer with memory (DESIGN §3.6, beyond CKS and LWL).

One step θₙ₊₁ = θₙ − h·Fₙ(θₙ, …, θ₀): −h·Fₙ is the update an optax transform returns at step
n from the gradients (and parameters) it has seen, h its learning rate. F̄ₙ(θ) = Fₙ(θ, …, θ)
is the update after n+1 steps that all saw θ (a *frozen replay*). On [nh, (n+1)h):

    θ̇ = −F̄ₙ(θ) − h·Mₙ(θ) − (h/2)·DF̄ₙ(θ)·F̄ₙ(θ),     Mₙ = Σₖ k·∂ₖFₙ(θ, …, θ)·F̄ₙ(θ),

tracks the iterates to O(h²) (``order=0``: θ̇ = −F̄ₙ, O(h)). Both corrections are one
directional derivative of the replay: step n−k is fed the gradient ∇E(θ) + (k+½)·u and the
parameters θ + (k+½)·δ, and the jvp in (u, δ) at (H·F̄ₙ, F̄ₙ) is Mₙ + ½DF̄ₙ·F̄ₙ (one HVP, never
a Hessian). The replay covers the last W steps, W from the slowest decay of the memory
(:func:`memory_window`), so a right-hand side costs the same at every n.

:func:`memory_corrected` does this for any ``optax.GradientTransformation``;
:mod:`adabias.flows.memory_ema` has the closed forms of ``ab.optim``'s EMA transforms.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import custom_batching
from jax.flatten_util import ravel_pytree

from adabias._validation import (check_positive, check_unit_interval, is_concrete,
                                 require_x64)
from adabias.flows.vector_field import PiecewiseField, step_index

PyTree = Any
LossFn = Callable[[PyTree], jax.Array]

__all__ = ["memory_corrected", "memory_window", "SMOOTHNESS_RTOL", "check_order",
           "skips_correction", "check_learning_rate_matches"]

#: The start's finite-difference check (step s) warns when |F(±s) − F(0) ∓ s·jvp| exceeds
#: this fraction of s·|jvp| + |F(0)|: a jump of the update (a sign flipping) makes it about
#: 1, a smooth update O(s²) (its second derivative times the squared gradient change).
SMOOTHNESS_RTOL = 0.1


def check_order(order: Any) -> Any:
    """``order`` must be 0 (θ̇ = −F̄ₙ) or 1 (with the memory correction); a traced value (one
    compiled solve for both orders) multiplies the correction and is the caller's word."""
    if not is_concrete(order):
        return order
    if isinstance(order, bool) or np.ndim(order) != 0 or order not in (0, 1):
        raise ValueError(f"order must be 0 or 1, got order={order!r}")
    return int(order)


def skips_correction(order: Any) -> bool:
    """True when ``order`` is a concrete 0: the correction need not be computed."""
    return is_concrete(order) and order == 0


def memory_window(decay: float, *, truncation: float = 1e-17) -> int:
    """The number W of most recent steps a replay covers: the smallest W with
    γᵂ·max(1, W(1−γ)) ≤ ``truncation``, γ = ``decay`` (the dropped EMA weight γᵂ of F̄ₙ and the
    dropped part ≈ W(1−γ)γᵂ of the k-weighted sum in Mₙ both fall below it). γ = 0: W = 1."""
    check_unit_interval("decay", decay)
    if not (0.0 < float(truncation) < 1.0):
        raise ValueError(f"truncation must lie in (0, 1), got truncation={truncation!r}")
    gamma = float(decay)
    if gamma == 0.0:
        return 1
    log_gamma = math.log(gamma)
    window = max(1, math.ceil(math.log(truncation) / log_gamma))
    while window * log_gamma + math.log(max(1.0, window * (1.0 - gamma))) > math.log(truncation):
        window += max(1, math.ceil(math.log(max(1.0, window * (1.0 - gamma))) / -log_gamma) // 2)
    return window


def _with_counters(state: PyTree, offset: jax.Array) -> PyTree:
    """``state`` with ``offset`` added to its integer leaves (optax's step counters)."""
    return jax.tree.map(
        lambda x: x + offset.astype(x.dtype)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer) else x, state)


def _axpy(a, x: PyTree, y: PyTree) -> PyTree:
    return jax.tree.map(lambda xi, yi: yi + a * xi, x, y)


#: States of at most this many numbers are carried through the replay as one flat buffer:
#: on a CPU a scan over many tiny leaves cost ~5× more per step (a 10-parameter net), while
#: for large states the copies into one buffer cost ~1.8× (a 5·10³-parameter MLP).
FLAT_CARRY_SIZE = 4096


def _carry(state: PyTree) -> tuple[Callable, Callable]:
    """(pack, unpack) between the optimizer state and what the replay's scan carries."""
    flat, unravel = ravel_pytree(state)
    if flat.size > FLAT_CARRY_SIZE:
        return (lambda tree: tree), (lambda tree: tree)
    return (lambda tree: ravel_pytree(tree)[0]), unravel


def _replay(optimizer: optax.GradientTransformation, h, window: int, n: jax.Array,
            grads: PyTree, params: PyTree, u: PyTree, delta: PyTree) -> PyTree:
    """Fₙ of a frozen replay of steps max(0, n−W+1) … n: step n−k sees ∇E + (k+½)u and
    θ + (k+½)δ; the window starts from ``init(θ)`` with its counters advanced to n−W+1."""
    first = n + 1 - window                       # the step replayed first (< 0: not yet taken)
    state = _with_counters(optimizer.init(params), jnp.maximum(first, 0))

    pack, unpack = _carry(state)

    def step(carry, j):
        weight = (window - 1 - j).astype(jnp.result_type(float)) + 0.5
        _, new = optimizer.update(_axpy(weight, u, grads), unpack(carry),
                                  _axpy(weight, delta, params))
        return jax.tree.map(lambda a, b: jnp.where(first + j >= 0, a, b), pack(new), carry), None

    if window > 1:
        state = unpack(jax.lax.scan(step, pack(state), jnp.arange(window - 1))[0])
    updates, _ = optimizer.update(_axpy(0.5, u, grads), state, _axpy(0.5, delta, params))
    return jax.tree.map(lambda x: -x / h, updates)


def _max_abs(tree: PyTree) -> jax.Array:
    return jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in jax.tree.leaves(tree)]))


def _start_disagreement(optimizer, h, scale, grads, params, direction, mean, correction):
    """(max over ± of max|F(±s·d) − F̄ ∓ s·J|, s·max|J| + max|F̄|) for the first step's
    update F along d = (u, δ), F̄ = F(0) and J its jvp (the field's own at n = 0), s = ``scale``
    (h/(1−γ): the gradient change over the memory, backwards and ahead). The first is what
    the linearization misses: O(s²) for a smooth update, a jump's size for a sign that flips."""
    one = functools.partial(_replay, optimizer, h, 1, jnp.zeros((), jnp.int32), grads, params)
    missed = []
    for sign in (1.0, -1.0):
        stepped = one(*jax.tree.map(lambda x: sign * scale * x, direction))
        missed.append(_max_abs(jax.tree.map(lambda f, f0, j: f - f0 - sign * scale * j,
                                            stepped, mean, correction)))
    return jnp.maximum(*missed), scale * _max_abs(correction) + _max_abs(mean)


def _start_warning() -> Callable:
    """A function (disagree, error, size) that warns once, at run time, when ``disagree``
    (under ``vmap``: for any member), without a host call per evaluation otherwise."""
    warned = []

    def host(error, size):
        if not warned:
            warned.append(True)
            warnings.warn(
                "memory_corrected: at the start, a finite difference of the optimizer's update "
                "disagrees with its derivative (|F(±s) − F(0) ∓ s·jvp| = "
                f"{float(np.max(error)):.3g}, s·|jvp| + |F(0)| = {float(np.max(size)):.3g}, "
                "s = h/(1 − decay)): the update is not smooth there "
                "(sign, clipping, a max), and the first-order memory correction is "
                "meaningless. Smooth the update (ab.optim.smoothed_lion, smoothed_signum) or "
                "use order=0.", RuntimeWarning, stacklevel=2)

    @custom_batching.custom_vmap
    def warn(disagree, error, size):
        jax.lax.cond(disagree, lambda: jax.debug.callback(host, error, size), lambda: None)
        return disagree

    @warn.def_vmap
    def _(axis_size, in_batched, disagree, error, size):
        reduce = lambda x, batched, op: op(x) if batched else x
        warn(reduce(disagree, in_batched[0], jnp.any), reduce(error, in_batched[1], jnp.max),
             reduce(size, in_batched[2], jnp.max))
        return disagree, in_batched[0]

    return warn


def check_learning_rate_matches(optimizer: optax.GradientTransformation, params: PyTree,
                                h: Any) -> None:
    """Where the transform exposes its learning rate (``optax.inject_hyperparams`` state),
    require it to equal h (both concrete); elsewhere h is the caller's word. ``params`` may
    be traced: the state is built from concrete zeros of their shapes."""
    with jax.ensure_compile_time_eval():
        zeros = jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), jnp.result_type(x)), params)
        state = optimizer.init(zeros)
    kinds = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)
    nodes = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, kinds))
    for node in nodes:
        if not isinstance(node, kinds) or "learning_rate" not in node.hyperparams:
            continue
        rate = node.hyperparams["learning_rate"]
        if is_concrete(rate) and is_concrete(h) and not np.isclose(float(rate), float(h),
                                                                   rtol=1e-12, atol=0.0):
            raise ValueError(f"memory_corrected: h must be the optimizer's learning rate, got "
                             f"h={h!r} and learning_rate={float(rate)!r} in its "
                             "inject_hyperparams state")


def memory_corrected(optimizer: optax.GradientTransformation, loss_fn: LossFn, h: Any,
                     order: int = 1, *, decay: float, truncation: float = 1e-17,
                     check_start: bool = True) -> PiecewiseField:
    """The modified flow of ``optimizer`` (any optax transform) on E = ``loss_fn``, DESIGN §3.6.

    On [nh, (n+1)h): θ̇ = −F̄ₙ(θ) − h·Mₙ(θ) − (h/2)·DF̄ₙ(θ)·F̄ₙ(θ) (``order=1``, global error
    O(h²) against the iterates), θ̇ = −F̄ₙ(θ) (``order=0``, O(h)); F̄ₙ, Mₙ by a frozen replay of
    the transform (module docstring), one gradient and one HVP per right-hand side.

    Args:
      optimizer: the ``optax.GradientTransformation`` whose iterates θ⁽ⁿ⁾ the flow tracks at
        t = nh. Its state's integer leaves are taken to be step counters (optax's ``count``).
      loss_fn: E(θ), full batch, on any parameter pytree.
      h: the transform's own (constant) learning rate: its update is −h·Fₙ. Checked against
        an ``optax.inject_hyperparams`` state; otherwise it must be the rate the transform
        was built with (a traced h inside :func:`adabias.flows.solve_steps` is fine).
      order: 1 (with the memory correction) or 0; a traced 0/1 (e.g. a ``hyper`` of
        :func:`adabias.flows.solve_steps`) multiplies the correction, so both orders share
        one compiled solve.
      decay: the slowest decay factor of the transform's memory (a number), e.g. max(b1, b2)
        for Adam, the momentum for SGD, 0 for a memoryless update; it sets the replayed
        window (:func:`memory_window`).
      truncation: EMA weights below this are dropped (default: float64 resolution).
      check_start: compile the start's smoothness check into the field (below). Its host
        callback sits in the solver's loop: on a model of a few parameters it doubles the
        cost of an evaluation; turn it off for an update known to be smooth.

    A non-smooth update (sign, clipping, a max) makes the correction meaningless: its jvp
    sees none of the jumps the iterates make. With ``order=1`` and ``check_start`` the field
    checks the first step's update at the start of a solve (n = 0) by differences of step
    ±h/(1−γ) along the correction's direction against its jvp, and warns
    (``RuntimeWarning``, once) when they disagree by more than :data:`SMOOTHNESS_RTOL`. A sign
    that flips within that reach always shows; a sign whose argument stays away from zero
    passes (there the correction is zero and locally right); a kink (clipping, a max) shows
    only where its effect over the step is a sizable part of the update. Requires float64.

    Returns:
      A :class:`~adabias.flows.PiecewiseField` with step size h, for
      :func:`adabias.flows.solve` and :func:`adabias.flows.solve_steps`.
    """
    require_x64("memory_corrected")
    order = check_order(order)
    check_positive("h", h)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError("memory_corrected needs an optax.GradientTransformation, got "
                        f"{type(optimizer).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    window = memory_window(decay, truncation=truncation)
    fd_scale = h / (1.0 - float(decay))
    warn = _start_warning()

    def vector_field(t, params: PyTree, args=None) -> PyTree:
        check_learning_rate_matches(optimizer, params, h)
        n = step_index(jnp.asarray(t, jnp.result_type(float)), h)
        grads, hvp = jax.linearize(jax.grad(loss_fn), params)
        replay = functools.partial(_replay, optimizer, h, window, n, grads, params)
        zeros = jax.tree.map(jnp.zeros_like, params)
        mean = replay(zeros, zeros)                                       # F̄ₙ(θ)
        if skips_correction(order):
            return jax.tree.map(jnp.negative, mean)
        direction = (hvp(mean), mean)                                     # (u, δ) = (H·F̄ₙ, F̄ₙ)
        _, correction = jax.jvp(replay, (zeros, zeros), direction)        # Mₙ + ½DF̄ₙ·F̄ₙ
        if check_start:
            error, size = jax.lax.cond(
                n == 0,
                lambda: _start_disagreement(optimizer, h, fd_scale, grads, params, direction,
                                            mean, correction),
                lambda: (jnp.zeros((), _dtype(mean)), jnp.ones((), _dtype(mean))))
            warn((n == 0) & (order != 0) & (error > SMOOTHNESS_RTOL * size), error, size)
        return jax.tree.map(lambda f, c: -(f + order * h * c), mean, correction)

    return PiecewiseField(vector_field, h)


def _dtype(tree: PyTree):
    return jnp.result_type(*jax.tree.leaves(tree))
