"""The modified flow of any optimizer with memory (DESIGN §3.6, beyond CKS and LWL).

One step θₙ₊₁ = θₙ − h·Fₙ(θₙ, …, θ₀): −h·Fₙ is the update an optax transform returns at step
n from the gradients (and parameters) it has seen, h its learning rate. F̄ₙ(θ) = Fₙ(θ, …, θ)
is the update after n+1 steps that all saw θ (a *frozen replay*). On [nh, (n+1)h):

    θ̇ = −F̄ₙ(θ) − h·Mₙ(θ) − (h/2)·DF̄ₙ(θ)·F̄ₙ(θ),     Mₙ = Σₖ k·∂ₖFₙ(θ, …, θ)·F̄ₙ(θ),

tracks the iterates to O(h²) (``order=0``: θ̇ = −F̄ₙ, O(h)). Both corrections are one
directional derivative of the replay: step n−k is fed the gradient ∇E(θ) + (k+½)·u and the
parameters θ + (k+½)·δ, and the jvp in (u, δ) at (H·F̄ₙ, F̄ₙ) is Mₙ + ½DF̄ₙ·F̄ₙ (one HVP, never
a Hessian). The replay covers the last W steps, W from the slowest decay γ of the memory
(:func:`memory_window`), so a right-hand side costs the same at every n.

:func:`memory_corrected` does this for any ``optax.GradientTransformation`` and finds γ itself
(:func:`probe_memory`: the transform's response to one gradient, at trace time);
:func:`memory_corrected_with_window` takes the window as given;
:mod:`adabias.flows.memory_ema` has the closed forms of ``ab.optim``'s EMA transforms.
"""

from __future__ import annotations

import functools
import math
import warnings
import weakref
from typing import Any, Callable, NamedTuple

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

__all__ = ["memory_corrected", "memory_corrected_with_window", "memory_window", "probe_memory",
           "MemoryProbe", "SMOOTHNESS_RTOL", "check_order", "skips_correction",
           "check_learning_rate_matches"]

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


#: The probe stops when two successive estimates of γ agree to this (relative) …
PROBE_RTOL = 1e-9
#: … and refuses a transform whose estimate has not settled after this many steps, or whose
#: settled γ is at least 1 − 1e-9 (a memory that does not decay: Adagrad's sum, a max).
PROBE_MAX_STEPS = 1024
_NO_DECAY = 1.0 - 1e-9


class MemoryProbe(NamedTuple):
    """What :func:`probe_memory` found: ``decay`` γ, the slowest geometric decay of the
    transform's response to one gradient; ``window`` W, the steps a replay covers
    (:func:`memory_window` of γ, and at least every lag at which the response was above the
    truncation); ``steps``, the optimizer steps the probe ran."""

    decay: float
    window: int
    steps: int


#: Probes per transform (its ``update`` function, weakly) and parameter structure.
_PROBES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _draws(seed: int, like: PyTree) -> PyTree:
    """Standard normal leaves shaped and typed like ``like`` (concrete; drawn by NumPy, which
    compiles nothing)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(jnp.shape(x)),
                                              jnp.result_type(x)), like)


def _leaf_norms(tangent: PyTree) -> np.ndarray:
    """‖·‖₂ of every floating leaf of a state tangent; refuses a traced one."""
    norms = []
    for leaf in jax.tree.leaves(tangent):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            continue                                      # a counter: no tangent (float0)
        if not is_concrete(leaf):
            raise ValueError(
                "memory_corrected: the optimizer's state depends on traced values (a "
                "hyperparameter such as β traced by jit, vmap or solve_steps' hyper, or an "
                "array the transform computed while being traced), so its memory cannot be "
                "probed. Build the transform from concrete hyperparameters (its learning rate "
                "may be traced; under jax.ensure_compile_time_eval() for arrays it computes), "
                "or pass the window: memory_corrected_with_window(..., window=W).")
        norms.append(float(np.linalg.norm(np.ravel(leaf))))
    return np.asarray(norms, float)


def _span_decay(norms: list, truncation: float) -> tuple[float, bool]:
    """(γ, live): the largest per-leaf geometric rate (a_K/a_{K/2})^{2/K} over the second half
    of the K lags in ``norms`` (a_k, k = 1 … K, per leaf), among leaves still above
    ``truncation`` times their peak; γ = 0 and live = False when none is."""
    a = np.asarray(norms)
    later, half = a[-1], a[len(a) // 2 - 1]
    live = (later > truncation * a.max(axis=0)) & (half > 0) if a.size else np.zeros(0, bool)
    if not live.any():
        return 0.0, False
    span = len(a) - len(a) // 2
    return float(np.max((later[live] / half[live]) ** (1.0 / span))), True


def probe_memory(optimizer: optax.GradientTransformation, params: PyTree, *,
                 truncation: float = 1e-17) -> MemoryProbe:
    """The decay γ of ``optimizer``'s memory and the window W of its replay, from its
    response to one gradient (its impulse response).

    The transform runs on fixed gradients g (standard normal draws shaped like ``params``,
    which may be traced: only their shapes and dtypes are used) with a tangent e on the
    first gradient only; a_k(leaf) = ‖∂stateₖ/∂g₀·e‖₂ is how much of g₀ its state still holds
    after k steps (every update reads the past only through the state, so the update's
    sensitivity decays at least as fast). The estimate (a_K/a_{K/2})^{2/K} for K = 2, 4, 8, …
    (largest over the state's leaves still above ``truncation`` times their peak) stops when
    two successive ones agree to :data:`PROBE_RTOL`, or when no leaf is left above the
    truncation; an EMA leaf gives its β exactly from K = 2. W = :func:`memory_window` (γ),
    and at least one more than the last lag whose response was above the truncation.
    GD: γ = 0, W = 1; heavy ball and Nesterov momentum μ: γ = μ; Adam, AdamW, NAdam and the
    AGMs: max(β₁, β₂); smoothed Lion: β₂ (its β₁ mixes the current gradient only).

    Runs at trace time, op by op under ``jax.ensure_compile_time_eval`` (a traced learning
    rate only scales the update, which the probe does not read), and is cached per transform
    and parameter structure. Cost, measured on the shared 2-core machine (load 6–9): an EMA
    state settles at K = 4, 5 optimizer steps of a few dozen eager operations each: 3–110 ms
    per transform on a 3-parameter model (GD 3 ms, heavy ball 20 ms, AdamW 60 ms, Adam-mini
    110 ms), 43–154 ms for Adam on a 4810-parameter MLP (BENCHMARKS.md); the first probe of
    a process also compiles JAX's eager kernels for its shapes, 1–7 s.

    Raises ``ValueError`` when the response does not decay (γ ≥ 1 − 1e-9: a sum such as
    Adagrad's) or has not settled after :data:`PROBE_MAX_STEPS` steps (a response kᵐγᵏ
    settles slowly), or when the state depends on traced values; then pass the window to
    :func:`memory_corrected_with_window`.
    """
    if not (0.0 < float(truncation) < 1.0):
        raise ValueError(f"truncation must lie in (0, 1), got truncation={truncation!r}")
    structure = jax.tree.structure(params)
    key = (structure, tuple((tuple(jnp.shape(x)), str(jnp.result_type(x)))
                            for x in jax.tree.leaves(params)), float(truncation))
    try:
        cache = _PROBES.setdefault(optimizer.update, {})
    except TypeError:                                    # not weakly referenceable
        cache = {}
    cached = cache.get(key)
    if cached is not None and cached[0]() is optimizer.init:
        return cached[1]
    with jax.ensure_compile_time_eval():
        like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)),
                            params)
        grads, point, direction = (_draws(seed, like) for seed in range(3))
        start = optimizer.init(point)
        state, tangent = jax.jvp(lambda g0: optimizer.update(g0, start, point)[1], (grads,),
                                 (direction,))
        step = lambda s: optimizer.update(grads, s, point)[1]
        norms, estimates, lasting = [_leaf_norms(tangent)], [], 0
        while True:
            while len(norms) < 2 ** (len(estimates) + 1):
                state, tangent = jax.jvp(step, (state,), (tangent,))
                norms.append(_leaf_norms(tangent))
            peak = np.max(norms, axis=0) if norms[0].size else np.zeros(0)
            above = [k + 1 for k, a in enumerate(norms) if np.any(a > truncation * peak)]
            lasting = max(above, default=0)
            gamma, live = _span_decay(norms, truncation)
            settled = bool(estimates) and abs(gamma - estimates[-1]) <= PROBE_RTOL * gamma
            if not live:
                gamma = estimates[-1] if estimates else 0.0
                break
            estimates.append(gamma)
            if settled:
                break
            if len(norms) >= PROBE_MAX_STEPS:
                raise ValueError(
                    f"memory_corrected: the optimizer's response to one gradient has not "
                    f"settled into a geometric decay after {len(norms)} steps (estimates "
                    f"{', '.join(f'{g:.6g}' for g in estimates[-3:])}); pass the window: "
                    "memory_corrected_with_window(..., window=W)")
    if gamma >= _NO_DECAY:
        raise ValueError(
            f"memory_corrected: the optimizer's memory does not decay (its response to one "
            f"gradient shrinks by γ = {gamma:.12g} per step; a sum or a max of past gradients "
            "never forgets), so no window covers it; pass one if a truncated memory is meant: "
            "memory_corrected_with_window(..., window=W)")
    window = max(memory_window(gamma, truncation=truncation), lasting + 1)
    probe = MemoryProbe(gamma, window, len(norms))
    try:
        cache[key] = (weakref.ref(optimizer.init), probe)
    except TypeError:
        pass
    return probe


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
                "s = h/(1 − γ), γ the decay of its memory): the update is not smooth there "
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
                     order: int = 1, *, truncation: float = 1e-17,
                     check_start: bool = True) -> PiecewiseField:
    """The modified flow of ``optimizer`` (any optax transform) on E = ``loss_fn``, DESIGN §3.6.

    On [nh, (n+1)h): θ̇ = −F̄ₙ(θ) − h·Mₙ(θ) − (h/2)·DF̄ₙ(θ)·F̄ₙ(θ) (``order=1``, global error
    O(h²) against the iterates), θ̇ = −F̄ₙ(θ) (``order=0``, O(h)); F̄ₙ, Mₙ by a frozen replay of
    the transform over its last W steps (module docstring), one gradient and one HVP per
    right-hand side. W is found when the field is first traced, from the transform's
    response to one gradient (:func:`probe_memory`: the slowest decay γ of its memory, then
    :func:`memory_window`); a memory that does not decay is refused there, and
    :func:`memory_corrected_with_window` takes W as given.

    Args:
      optimizer: the ``optax.GradientTransformation`` whose iterates θ⁽ⁿ⁾ the flow tracks at
        t = nh. Its state's integer leaves are taken to be step counters (optax's ``count``).
        Its state must not depend on traced values (a traced learning rate is fine).
      loss_fn: E(θ), full batch, on any parameter pytree.
      h: the transform's own (constant) learning rate: its update is −h·Fₙ. Checked against
        an ``optax.inject_hyperparams`` state; otherwise it must be the rate the transform
        was built with (a traced h inside :func:`adabias.flows.solve_steps` is fine).
      order: 1 (with the memory correction) or 0; a traced 0/1 (e.g. a ``hyper`` of
        :func:`adabias.flows.solve_steps`) multiplies the correction, so both orders share
        one compiled solve.
      truncation: the replay drops the steps whose weight is below this (default: float64
        resolution; :func:`memory_window`).
      check_start: compile the start's smoothness check into the field (below). Its host
        callback sits in the solver's loop: on a model of a few parameters it doubles the
        cost of an evaluation; turn it off for an update known to be smooth.

    A non-smooth update (sign, clipping, a max) makes the correction meaningless: its jvp
    sees none of the jumps the iterates make. With ``order=1`` and ``check_start`` the field
    checks the first step's update at the start of a solve (n = 0) by differences of step
    s = h/(1−γ) along the correction's direction against its jvp, and warns
    (``RuntimeWarning``, once) when they disagree by more than :data:`SMOOTHNESS_RTOL`. A sign
    that flips within that reach always shows; a sign whose argument stays away from zero
    passes (there the correction is zero and locally right); a kink (clipping, a max) shows
    only where its effect over the step is a sizable part of the update. Requires float64.

    Returns:
      A :class:`~adabias.flows.PiecewiseField` with step size h, for
      :func:`adabias.flows.solve` and :func:`adabias.flows.solve_steps`.
    """
    if not (0.0 < float(truncation) < 1.0):
        raise ValueError(f"truncation must lie in (0, 1), got truncation={truncation!r}")

    def window_and_reach(params):
        probe = probe_memory(optimizer, params, truncation=truncation)
        return probe.window, 1.0 / (1.0 - probe.decay)

    return _memory_field(optimizer, loss_fn, h, order, window_and_reach, check_start)


def memory_corrected_with_window(optimizer: optax.GradientTransformation, loss_fn: LossFn,
                                 h: Any, window: int, order: int = 1, *,
                                 check_start: bool = True) -> PiecewiseField:
    """:func:`memory_corrected` with the replayed window W = ``window`` (a positive integer)
    given instead of probed: for a memory that the probe refuses (one that does not decay,
    or whose state depends on traced values), or to truncate it on purpose. The start's
    check uses the reach s = h·W/ln(10¹⁷) (h/(1−γ) for the γ whose :func:`memory_window` is
    W). Arguments and result otherwise as :func:`memory_corrected`."""
    if (isinstance(window, (bool, np.bool_)) or not isinstance(window, (int, np.integer))
            or window < 1):
        raise ValueError(f"window must be a positive integer, got window={window!r}")
    window = int(window)
    reach = max(1.0, window / math.log(1e17))
    return _memory_field(optimizer, loss_fn, h, order, lambda params: (window, reach),
                         check_start)


def _memory_field(optimizer, loss_fn, h, order, window_and_reach: Callable,
                  check_start: bool) -> PiecewiseField:
    """The field of :func:`memory_corrected`; ``window_and_reach(params)`` gives W and the
    start check's reach in steps (1/(1−γ)) from the parameters' shapes."""
    require_x64("memory_corrected")
    order = check_order(order)
    check_positive("h", h)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError("memory_corrected needs an optax.GradientTransformation, got "
                        f"{type(optimizer).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    warn = _start_warning()

    def vector_field(t, params: PyTree, args=None) -> PyTree:
        check_learning_rate_matches(optimizer, params, h)
        window, reach = window_and_reach(params)
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
                lambda: _start_disagreement(optimizer, h, h * reach, grads, params, direction,
                                            mean, correction),
                lambda: (jnp.zeros((), _dtype(mean)), jnp.ones((), _dtype(mean))))
            warn((n == 0) & (order != 0) & (error > SMOOTHNESS_RTOL * size), error, size)
        return jax.tree.map(lambda f, c: -(f + order * h * c), mean, correction)

    return PiecewiseField(vector_field, h)


def _dtype(tree: PyTree):
    return jnp.result_type(*jax.tree.leaves(tree))
