"""Curvature measures of a loss at params, all from Hessian-vector products.

Exact methods apply the Hessian to basis vectors in chunks (p HVPs, O(chunk·p) memory, no
p×p matrix); stochastic methods use Rademacher probes z (entries ±1):

* Hutchinson diagonal  d̂ = (1/N) Σₛ zₛ ⊙ H zₛ.  Unbiased; Var(d̂ᵢ) = Σ_{j≠i} Hᵢⱼ² / N, so the
  error of coordinate i is √(Σ_{j≠i} Hᵢⱼ²/N): zero for a diagonal Hessian, ∝ N^{-1/2} otherwise.
* Hutchinson trace  t̂ = (1/N) Σₛ zₛᵀ H zₛ.  Unbiased; Var(t̂) = 2 Σ_{i≠j} Hᵢⱼ² / N.
* tr(Diag(H)^p) from d̂ is a plug-in estimate Σ max(d̂ᵢ, 0)^p: consistent, biased by
  O(Var(d̂)) for p ≠ 1 (Jensen), so its error also falls like N^{-1/2} until the bias shows.

One sample costs one HVP (the gradient is linearized once and reused); probes are drawn
chunk by chunk, so memory is O(chunk·p) for any number of samples. ``tests/test_measures.py``
measures these errors against the exact values.

HVPs are vmapped ``chunk_size`` at a time. The default keeps a chunk's tangents near
2¹⁷ numbers (``chunk_size ≈ 2¹⁷/p``, between 1 and 256), so a chunk does not grow with p:
on a 2-core CPU, chunks of 256 HVPs of a p ≈ 5·10³ MLP were 1.2× slower than chunks of
16–64 on an idle machine and up to 5× slower while other processes competed for the
cache (``benchmarks/bench_curvature.py``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from adabias._random import rademacher
from adabias.measures.hvp import flat_hvp

PyTree = Any
LossFn = Callable[..., jax.Array]
Statistic = Callable[[PyTree], PyTree]

_METHODS = ("exact", "hutchinson")
_CHUNK_NUMBERS = 2**17  # tangent entries per chunk of HVPs when chunk_size is not given


def _chunk(chunk_size: Optional[int], size: int, count: int) -> int:
    """HVPs per vmapped chunk: ``chunk_size``, or about 2¹⁷/p (at most 256), never above ``count``."""
    if chunk_size is None:
        chunk_size = max(1, min(256, _CHUNK_NUMBERS // max(size, 1)))
    elif int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive integer, got chunk_size={chunk_size!r}")
    return max(1, min(int(chunk_size), count))


def _check_method(method: str, key, num_samples) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got method={method!r}")
    if method == "hutchinson":
        if key is None:
            raise ValueError("method='hutchinson' draws random probes: pass key=jax.random.key(...)")
        if num_samples is None or int(num_samples) < 1:
            raise ValueError(f"method='hutchinson' needs num_samples >= 1, got num_samples={num_samples!r}")


def _rademacher(key: jax.Array, num: int, size: int, dtype) -> jax.Array:
    """``num`` × ``size`` independent signs ±1, 32 per random word (a third of the cost
    of ``jax.random.rademacher`` on CPU, where drawing a probe rivals one HVP of a 10⁵ MLP)."""
    return rademacher(key, (num, size), dtype)


def _probe_mean(matvec, key: jax.Array, num_samples: int, size: int, dtype,
                chunk_size: Optional[int], reduce) -> jax.Array:
    """(1/N) Σₛ reduce(zₛ, H zₛ) over N Rademacher probes zₛ ∈ {±1}^p.

    Probes are drawn ``chunk`` at a time inside a scan and summed at once, so memory is
    O(chunk·p) whatever N (not O(N·p)).
    """
    chunk = _chunk(chunk_size, size, num_samples)
    full, rest = divmod(num_samples, chunk)
    keys = jax.random.split(key, full + 1)

    def chunk_sum(chunk_key: jax.Array, count: int) -> jax.Array:
        probes = _rademacher(chunk_key, count, size, dtype)
        return jnp.sum(jax.vmap(lambda z: reduce(z, matvec(z)))(probes), axis=0)

    shape = jax.eval_shape(lambda k: chunk_sum(k, 1), keys[0])
    total = jnp.zeros(shape.shape, shape.dtype)
    if full:
        total = jax.lax.scan(lambda t, k: (t + chunk_sum(k, chunk), None), total, keys[:full])[0]
    if rest:
        total = total + chunk_sum(keys[full], rest)
    return total / num_samples


def _flat_hessian_diag(loss_fn, params, args, method, key, num_samples, chunk_size):
    matvec, x, unravel = flat_hvp(loss_fn, params, *args)
    size = x.shape[0]
    if method == "exact":
        basis_index = jnp.arange(size)
        diag = jax.lax.map(
            lambda i: matvec(jax.nn.one_hot(i, size, dtype=x.dtype))[i],
            basis_index,
            batch_size=_chunk(chunk_size, size, size),
        )
    else:
        diag = _probe_mean(matvec, key, int(num_samples), size, x.dtype, chunk_size, jnp.multiply)
    return diag, unravel


def hessian_diag(
    loss_fn: LossFn,
    params: PyTree,
    *args,
    method: str = "exact",
    key: Optional[jax.Array] = None,
    num_samples: Optional[int] = None,
    chunk_size: Optional[int] = None,
) -> PyTree:
    """Diag(∇²E(θ)) as a pytree like ``params``; E = ``loss_fn(params, *args)``.

    ``method="exact"``: Hᵢᵢ = eᵢᵀ H eᵢ for every i (p HVPs in chunks of ``chunk_size``).
    ``method="hutchinson"``: (1/N) Σ z ⊙ Hz over ``num_samples`` Rademacher probes (needs ``key``).
    ``chunk_size``: HVPs vmapped together (default ≈ 2¹⁷/p, see the module docstring).
    """
    _check_method(method, key, num_samples)
    diag, unravel = _flat_hessian_diag(loss_fn, params, args, method, key, num_samples, chunk_size)
    return unravel(diag)


def hessian_trace(
    loss_fn: LossFn,
    params: PyTree,
    *args,
    method: str = "exact",
    key: Optional[jax.Array] = None,
    num_samples: Optional[int] = None,
    chunk_size: Optional[int] = None,
) -> jax.Array:
    """tr(∇²E(θ)), the sharpness SGD with label noise reduces (LWL).

    ``method="exact"``: Σᵢ Hᵢᵢ; ``method="hutchinson"``: (1/N) Σ zᵀHz.
    """
    _check_method(method, key, num_samples)
    if method == "exact":
        diag, _ = _flat_hessian_diag(loss_fn, params, args, method, key, num_samples, chunk_size)
        return jnp.sum(diag)
    matvec, x, _ = flat_hvp(loss_fn, params, *args)
    return _probe_mean(matvec, key, int(num_samples), x.shape[0], x.dtype, chunk_size, jnp.vdot)


def diag_power_trace(
    loss_fn: LossFn,
    params: PyTree,
    *args,
    power: float = 0.5,
    statistic: Optional[Statistic] = None,
    method: str = "exact",
    key: Optional[jax.Array] = None,
    num_samples: Optional[int] = None,
    chunk_size: Optional[int] = None,
) -> jax.Array:
    """tr(V(Diag H)^p) = Σᵢ max(V(Diag H)ᵢ, 0)^p; with V = identity, tr(Diag(H)^p).

    p = 1/2 is Adam's sharpness measure, p = 1 − λ AdamE-λ's (LWL). With ``statistic`` an
    AGM's V (``adabias.optim.agm.block_mean(blocks)`` for Adam-mini, ``leaf_mean`` for
    Adalayer), every coordinate of block B carries the block mean, so this is
    Σ_B |B|·(mean_{i∈B} Hᵢᵢ)^p: the measure a block method reduces (DESIGN §3.5).
    Negative diagonal entries (off the manifold) are clipped at 0.
    """
    diag = hessian_diag(loss_fn, params, *args, method=method, key=key,
                        num_samples=num_samples, chunk_size=chunk_size)
    if statistic is not None:
        diag = statistic(diag)
    return sum(jnp.sum(jnp.power(jnp.maximum(d, 0.0), power)) for d in jax.tree.leaves(diag))


def top_eigenvalue(
    loss_fn: LossFn,
    params: PyTree,
    *args,
    method: str = "lanczos",
    num_iters: int = 30,
    key: Optional[jax.Array] = None,
) -> jax.Array:
    """Largest eigenvalue of ∇²E(θ) (the sharpness of Cohen et al.), from HVPs only.

    ``method="lanczos"``: ``num_iters`` Lanczos steps with full reorthogonalization, then
    the top Ritz value (exact once num_iters ≥ p; converges fast for a separated top
    eigenvalue). ``method="power"``: power iteration on H, Rayleigh quotient at the end
    (finds the eigenvalue largest in magnitude; slower when the gap is small).
    """
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got method={method!r}")
    if int(num_iters) < 1:
        raise ValueError(f"num_iters must be >= 1, got num_iters={num_iters!r}")
    matvec, x, _ = flat_hvp(loss_fn, params, *args)
    key = jax.random.key(0) if key is None else key
    start = jax.random.normal(key, x.shape, x.dtype)
    start = start / jnp.linalg.norm(start)
    if method == "power":
        def power_step(_, v):
            w = matvec(v)
            return w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(x.dtype).tiny)
        v = jax.lax.fori_loop(0, int(num_iters), power_step, start)
        return jnp.vdot(v, matvec(v))
    return _lanczos_top(matvec, start, min(int(num_iters), x.shape[0]))


def _lanczos_top(matvec, start: jax.Array, num_iters: int) -> jax.Array:
    size = start.shape[0]
    dtype = start.dtype
    basis = jnp.zeros((num_iters + 1, size), dtype).at[0].set(start)
    alphas = jnp.zeros(num_iters, dtype)
    betas = jnp.zeros(num_iters, dtype)

    def lanczos_step(i, state):
        basis, alphas, betas, broken = state
        w = matvec(basis[i])
        alpha = jnp.vdot(w, basis[i])
        # full reorthogonalization against every earlier vector (rows > i are still zero)
        w = w - basis.T @ (basis @ w)
        w = w - basis.T @ (basis @ w)
        beta = jnp.linalg.norm(w)
        # after an invariant subspace is found, pad with a Rayleigh quotient (≤ λ_max)
        alpha = jnp.where(broken, alphas[0], alpha)
        broken = broken | (beta <= 1e-10 * (jnp.abs(alpha) + jnp.abs(alphas[0])) + jnp.finfo(dtype).tiny)
        beta = jnp.where(broken, 0.0, beta)
        next_vector = jnp.where(broken, jnp.zeros_like(w), w / jnp.where(broken, 1.0, beta))
        return basis.at[i + 1].set(next_vector), alphas.at[i].set(alpha), betas.at[i].set(beta), broken

    state = (basis, alphas, betas, jnp.array(False))
    _, alphas, betas, _ = jax.lax.fori_loop(0, num_iters, lanczos_step, state)
    tridiagonal = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
    return jnp.max(jnp.linalg.eigvalsh(tridiagonal))
