"""LWL slow ODEs near the minimizer manifold Γ under label noise (SGD and AGMs).

Label noise replaces every target y_i by y_i + δξ_i, ξ_i = ±1, at every step. Near Γ the
gradient-noise covariance is Σ = α·∇²L; for the loss ½·mean over n samples of (f − y)²,
α = δ²/n (:func:`label_noise_alpha`). In the time t = k·η² (DESIGN §3.5, derivation in
``docs/label_noise_slow_ode.md``):

    SGD:  dζ/dt = −(α/4) P_∥ ∇tr(H(ζ))
    AGM:  dv/dt = c (V(Σ(ζ)) − v),   c = (1−β₂)/η²,   Σ(ζ) = α·H(ζ)  (V sees diag Σ)
          dζ/dt = −(α/4) S^{1/2}(I − A⁺A)S^{1/2} ∇³L(ζ)[S],   A = S^{1/2} H S^{1/2},  S = S(v)

with ∇³L(ζ)[S] = ∇_ζ tr(S ∇²L(ζ)) at S frozen. S^{1/2}(I − A⁺A)S^{1/2} = P_S·S, where
P_S = S^{1/2}(I − A⁺A)S^{−1/2} projects onto T_ζΓ along S·(normal space); P_S = P_∥ for S = I.

Fields (``f(t, y, args=None)``, diffrax's signature, for :func:`solve`):
:func:`label_noise_slow_sgd`, :func:`label_noise_slow_agm` (the coupled system on
:class:`SlowAGMState` (v, ζ)) and :func:`label_noise_slow_agm_quasi_static` (v = V(Σ(ζ)), the
c → ∞ limit).

Numerics (meant for small to moderate p, the regime of the papers' slow-ODE checks): the
parameters are raveled into one vector; the Hessian is formed from p HVPs (a vmap over basis
vectors), its diagonal by :func:`adabias.measures.hessian_diag`, and T_ζΓ = null H(ζ) is read
off an eigendecomposition of A (relative cutoff ``rank_rtol``), which is general for any loss whose minimizers form a manifold. Given a
``residual_fn`` (for a squared loss, H = JᵀDJ on Γ with J the residuals' Jacobian), the
projection is computed from the SVD of J·S^{1/2} instead (n×p, exact, cheaper). Both need ζ
on Γ: start from :func:`project_to_manifold`.

Every field and :func:`project_to_manifold` need float64 (near-manifold drifts and
tolerances near 1e-11 are below float32 resolution) and refuse float32 input (x64 off, or
float32 params for :func:`project_to_manifold`); keyword-only ``allow_float32=True`` opts out.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import diffrax
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from adabias._validation import check_positive, require_float64
from adabias.measures.curvature import hessian_diag
from adabias.measures.hvp import hvp

PyTree = Any
Statistic = Callable[[PyTree], PyTree]
Preconditioner = Callable[[PyTree], PyTree]
Field = Callable[..., PyTree]  # f(t, y, args=None), diffrax's signature

__all__ = [
    "label_noise_alpha",
    "label_noise_slow_sgd",
    "label_noise_slow_agm_quasi_static",
    "label_noise_slow_agm",
    "SlowAGMState",
    "quasi_static_v",
    "hessian_trace_semigradient",
    "tangent_projector",
    "project_to_manifold",
]


def label_noise_alpha(delta: float, n: int) -> float:
    """α = δ²/n: Σ = α·H for ½·mean_n (f − y)² with every label moved by ±δ at each step."""
    check_positive("delta", delta)
    check_positive("n", n)
    return float(delta) ** 2 / float(n)


# --- flat-vector primitives -----------------------------------------------------------


def _flat_loss(loss_fn: Callable, batch: Any, params: PyTree):
    """(L on raveled params, raveled params, unravel); batch=None means loss_fn(params)."""
    x, unravel = ravel_pytree(params)
    if batch is None:
        return (lambda y: loss_fn(unravel(y))), x, unravel
    return (lambda y: loss_fn(unravel(y), batch)), x, unravel


def _flat_hessian(flat_loss: Callable, x: jax.Array) -> jax.Array:
    """∇²L(x) as a p×p matrix from p HVPs (symmetrized)."""
    hessian = jax.vmap(lambda e: hvp(flat_loss, x, e))(jnp.eye(x.size, dtype=x.dtype))
    return 0.5 * (hessian + hessian.T)


def _flat_semigradient(flat_loss: Callable, x: jax.Array, s: jax.Array) -> jax.Array:
    """∇³L(x)[S] = ∇_y Σ_i s_i H_ii(y) at y = x with s frozen.

    s is held fixed by differentiating in y alone (no ``stop_gradient``), so an outer
    derivative of a field built on this, e.g. the coupled slow ODE's Jacobian in v, still
    sees how s = S(v) moves.
    """
    return jax.grad(lambda y: jnp.vdot(s, hessian_diag(flat_loss, y)))(x)


def _range_projector_eig(matrix: jax.Array, rank_rtol: float) -> jax.Array:
    """Orthogonal projector A⁺A onto range(A), A symmetric, eigenvalues > rtol·max|λ| kept."""
    eigenvalues, eigenvectors = jnp.linalg.eigh(matrix)
    cutoff = rank_rtol * jnp.max(jnp.abs(eigenvalues))
    keep = (eigenvalues > cutoff).astype(matrix.dtype)
    return (eigenvectors * keep) @ eigenvectors.T


def _pseudo_inverse_eig(matrix: jax.Array, rank_rtol: float) -> jax.Array:
    """A⁺ for symmetric A, eigenvalues ≤ rtol·max|λ| treated as zero."""
    eigenvalues, eigenvectors = jnp.linalg.eigh(matrix)
    keep = eigenvalues > rank_rtol * jnp.max(jnp.abs(eigenvalues))
    inverse = jnp.where(keep, 1.0 / jnp.where(keep, eigenvalues, 1.0), 0.0)
    return (eigenvectors * inverse) @ eigenvectors.T


def _row_space_projector_svd(matrix: jax.Array, rank_rtol: float) -> jax.Array:
    """Orthogonal projector B⁺B onto the row space of B (singular values > rtol·σ_max)."""
    _, singular, vt = jnp.linalg.svd(matrix, full_matrices=False)
    keep = (singular > rank_rtol * jnp.max(singular)).astype(matrix.dtype)
    return (vt.T * keep) @ vt


def _flat_projector(flat_loss, flat_residual, x, s, rank_rtol) -> jax.Array:
    """P_S = S^{1/2}(I − A⁺A)S^{−1/2}, A = S^{1/2} H S^{1/2} (or A⁺A from J S^{1/2})."""
    root = jnp.sqrt(s)
    if flat_residual is None:
        hessian = _flat_hessian(flat_loss, x)
        range_projector = _range_projector_eig(root[:, None] * hessian * root[None, :], rank_rtol)
    else:
        jacobian = jax.jacfwd(flat_residual)(x).reshape(-1, x.size)
        range_projector = _row_space_projector_svd(jacobian * root[None, :], rank_rtol)
    tangent = jnp.eye(x.size, dtype=x.dtype) - range_projector
    return root[:, None] * tangent / root[None, :]


def _flat_residual_fn(residual_fn, batch, unravel):
    if residual_fn is None:
        return None
    if batch is None:
        return lambda y: jnp.ravel(residual_fn(unravel(y)))
    return lambda y: jnp.ravel(residual_fn(unravel(y), batch))


def _flat_drift(flat_loss, flat_residual, x, s, alpha, rank_rtol) -> jax.Array:
    """−(α/4) P_S S ∇³L(x)[S] = −(α/4) S^{1/2}(I − A⁺A)S^{1/2} ∇³L(x)[S]."""
    projector = _flat_projector(flat_loss, flat_residual, x, s, rank_rtol)
    return -(alpha / 4.0) * projector @ (s * _flat_semigradient(flat_loss, x, s))


def _preconditioner_vector(S: Optional[PyTree], x: jax.Array) -> jax.Array:
    if S is None:
        return jnp.ones_like(x)
    s, _ = ravel_pytree(S)
    if s.shape != x.shape:
        raise ValueError(f"S must be shaped like params: {s.size} entries for {x.size} parameters")
    return s.astype(x.dtype)


# --- public pieces --------------------------------------------------------------------


def hessian_trace_semigradient(
    loss_fn: Callable, batch: Any, params: PyTree, S: Optional[PyTree] = None
) -> PyTree:
    """∇³L(θ)[S] = ∇_θ tr(S ∇²L(θ)) with the diagonal S (pytree like params) held fixed.

    S = None gives ∇tr(H), the direction SGD's slow flow follows. Exact: the gradient of
    θ ↦ Σ_i S_i e_iᵀ∇²L(θ)e_i, p differentiated HVPs.
    """
    flat_loss, x, unravel = _flat_loss(loss_fn, batch, params)
    return unravel(_flat_semigradient(flat_loss, x, _preconditioner_vector(S, x)))


def tangent_projector(
    loss_fn: Callable,
    batch: Any,
    params: PyTree,
    S: Optional[PyTree] = None,
    *,
    residual_fn: Optional[Callable] = None,
    rank_rtol: float = 1e-8,
) -> jax.Array:
    """P_S = S^{1/2}(I − A⁺A)S^{−1/2} on raveled params (a p×p matrix), A = S^{1/2}HS^{1/2}.

    For params on Γ it projects onto T_θΓ = null H along S·(normal space); S = None gives the
    orthogonal projection P_∥ = I − H⁺H. With ``residual_fn(params, batch)`` (the vector whose
    Jacobian J has null J = T_θΓ, e.g. f − y) A⁺A comes from the SVD of J S^{1/2}.
    """
    flat_loss, x, unravel = _flat_loss(loss_fn, batch, params)
    flat_residual = _flat_residual_fn(residual_fn, batch, unravel)
    return _flat_projector(flat_loss, flat_residual, x, _preconditioner_vector(S, x), rank_rtol)


def quasi_static_v(
    loss_fn: Callable, batch: Any, params: PyTree, *, alpha: float, V: Statistic
) -> PyTree:
    """v = V(Σ(θ)) = V(α·diag ∇²L(θ)): the statistic's fixed point (the c → ∞ limit)."""
    flat_loss, x, unravel = _flat_loss(loss_fn, batch, params)
    return V(unravel(alpha * hessian_diag(flat_loss, x)))


class SlowAGMState(NamedTuple):
    """State of :func:`label_noise_slow_agm`: the AGM's statistic v and the point ζ ∈ Γ."""

    v: PyTree
    zeta: PyTree


def _flat_parts(loss_fn, batch, residual_fn, params):
    flat_loss, x, unravel = _flat_loss(loss_fn, batch, params)
    return flat_loss, x, unravel, _flat_residual_fn(residual_fn, batch, unravel)


def _slow_drift(what, loss_fn, batch, alpha, residual_fn, rank_rtol, allow_float32):
    """The checks every slow ODE makes, and its drift ``drift(zeta, preconditioner)`` =
    −(α/4) S^{1/2}(I − A⁺A)S^{1/2} ∇³L(ζ)[S], s = preconditioner(flat_loss, x, unravel)."""
    require_float64(what, allow_float32=allow_float32)
    check_positive("alpha", alpha)

    def drift(zeta: PyTree, preconditioner: Callable) -> PyTree:
        flat_loss, x, unravel, flat_residual = _flat_parts(loss_fn, batch, residual_fn, zeta)
        s = preconditioner(flat_loss, x, unravel)
        return unravel(_flat_drift(flat_loss, flat_residual, x, s, alpha, rank_rtol))

    return drift


def label_noise_slow_sgd(
    loss_fn: Callable,
    batch: Any,
    *,
    alpha: float,
    residual_fn: Optional[Callable] = None,
    rank_rtol: float = 1e-8,
    allow_float32: bool = False,
) -> Field:
    """SGD's slow ODE under label noise (LWA; DESIGN §3.5), time t = kη²:

        dζ/dt = −(α/4) P_∥ ∇tr(H(ζ)),   P_∥ the orthogonal projector onto T_ζΓ = null H(ζ).

    A field ``f(t, ζ, args=None)`` for :func:`solve`. Arguments as in :func:`label_noise_slow_agm`.
    """
    drift = _slow_drift("label_noise_slow_sgd", loss_fn, batch, alpha, residual_fn, rank_rtol,
                        allow_float32)

    def field(t, zeta: PyTree, args=None) -> PyTree:
        return drift(zeta, lambda flat_loss, x, unravel: jnp.ones_like(x))

    return field


def label_noise_slow_agm_quasi_static(
    loss_fn: Callable,
    batch: Any,
    *,
    alpha: float,
    V: Statistic,
    S: Preconditioner,
    residual_fn: Optional[Callable] = None,
    rank_rtol: float = 1e-8,
    allow_float32: bool = False,
) -> Field:
    """An AGM's slow ODE with v at its fixed point v = V(α·diag H(ζ)) (the c → ∞ limit):

        dζ/dt = −(α/4) S^{1/2}(I − A⁺A)S^{1/2} ∇³L(ζ)[S],   S = S(V(α·diag H(ζ))),  A = S^{1/2}HS^{1/2}.

    A field ``f(t, ζ, args=None)`` for :func:`solve`. Arguments as in :func:`label_noise_slow_agm`.
    """
    drift = _slow_drift("label_noise_slow_agm_quasi_static", loss_fn, batch, alpha, residual_fn,
                        rank_rtol, allow_float32)

    def quasi_static(flat_loss, x, unravel):
        return _preconditioner_vector(S(V(unravel(alpha * hessian_diag(flat_loss, x)))), x)

    def field(t, zeta: PyTree, args=None) -> PyTree:
        return drift(zeta, quasi_static)

    return field


def label_noise_slow_agm(
    loss_fn: Callable,
    batch: Any,
    *,
    alpha: float,
    V: Statistic,
    S: Preconditioner,
    c: float,
    residual_fn: Optional[Callable] = None,
    rank_rtol: float = 1e-8,
    allow_float32: bool = False,
) -> Field:
    """An AGM's slow ODE under label noise near Γ, coupled with its statistic v (LWL; DESIGN §3.5):

        dv/dt = c (V(α·diag H(ζ)) − v),
        dζ/dt = −(α/4) S^{1/2}(I − A⁺A)S^{1/2} ∇³L(ζ)[S],   S = S(v),  A = S^{1/2}HS^{1/2},

    in time t = kη², c = (1−β₂)/η². A field ``f(t, y, args=None)`` on y = :class:`SlowAGMState`
    for :func:`solve`; start v at :func:`quasi_static_v` to match an AGM whose v has
    equilibrated.

    Args:
      loss_fn: L(params, batch) (or L(params) when ``batch`` is None); ζ must stay on its
        minimizer manifold Γ (start from :func:`project_to_manifold`).
      alpha: Σ = α·∇²L near Γ; :func:`label_noise_alpha` for the exact label-noise model.
      V, S: the AGM's statistic and preconditioner (:mod:`adabias.optim.agm`).
      c: (1−β₂)/η², the rate at which v relaxes in the slow time.
      residual_fn: optional residuals r(params, batch) with null(∂r) = T_ζΓ (e.g. f − y);
        then projections use the SVD of the Jacobian instead of the Hessian's eigenvectors.
      rank_rtol: relative cutoff deciding the rank of H (or J) on Γ.
      allow_float32: build the field with x64 off (refused by default: DESIGN §2).
    """
    drift = _slow_drift("label_noise_slow_agm", loss_fn, batch, alpha, residual_fn, rank_rtol,
                        allow_float32)
    check_positive("c", c)

    def field(t, state: SlowAGMState, args=None) -> SlowAGMState:
        target = quasi_static_v(loss_fn, batch, state.zeta, alpha=alpha, V=V)
        dv = jax.tree.map(lambda goal, current: c * (goal - current), target, state.v)
        frozen = lambda flat_loss, x, unravel: _preconditioner_vector(S(state.v), x)
        return SlowAGMState(v=dv, zeta=drift(state.zeta, frozen))

    return field


def project_to_manifold(
    loss_fn: Callable,
    batch: Any,
    params: PyTree,
    *,
    S: Optional[PyTree] = None,
    grad_tol: float = 1e-7,
    newton_steps: int = 3,
    t_max: float = 1e4,
    rtol: float = 1e-9,
    atol: float = 1e-11,
    max_steps: int = 100_000,
    rank_rtol: float = 1e-8,
    allow_float32: bool = False,
) -> PyTree:
    """Follow θ̇ = −S∇L(θ) (S a frozen diagonal, pytree like params; None = I) to Γ.

    The flow is integrated with diffrax (Tsit5, adaptive steps) until ‖S∇L‖∞ < ``grad_tol``
    (or t = t_max); then ``newton_steps`` preconditioned Gauss–Newton-type corrections
    θ ← θ − S^{1/2}A⁺S^{1/2}∇L(θ), A = S^{1/2}∇²L S^{1/2} (rank cut at ``rank_rtol``), move
    along S·(normal space) to Γ to machine precision. The corrections change the end point
    by O(dist(θ, Γ)²) relative to the flow's limit, and spare the explicit solver its slow
    crawl at the tolerance floor. The end point approximates the limit map Φ_S(θ). Works
    under ``jax.vmap`` (many seeds); meant for small p (forms the p×p Hessian). Refuses
    float32 ``params`` or x64 off (``allow_float32=True`` opts out).
    """
    require_float64("project_to_manifold", allow_float32=allow_float32, params=params)
    flat_loss, x, unravel = _flat_loss(loss_fn, batch, params)
    s = _preconditioner_vector(S, x)
    flat_grad = jax.grad(flat_loss)

    def vector_field(t, y, args):
        return -s * flat_grad(y)

    def converged(t, y, args, **kwargs):
        return jnp.max(jnp.abs(s * flat_grad(y))) < grad_tol

    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        diffrax.Tsit5(),
        t0=0.0,
        t1=t_max,
        dt0=None,
        y0=x,
        saveat=diffrax.SaveAt(t1=True),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        event=diffrax.Event(converged),
        max_steps=max_steps,
        throw=False,
    )
    y = solution.ys[-1]
    root = jnp.sqrt(s)
    for _ in range(newton_steps):
        hessian = _flat_hessian(flat_loss, y)
        a = root[:, None] * hessian * root[None, :]
        y = y - root * (_pseudo_inverse_eig(a, rank_rtol) @ (root * flat_grad(y)))
    return unravel(y)
