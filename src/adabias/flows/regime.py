"""Is a modified flow inside its asymptotic regime? (DESIGN §3.2, §3.6)

A first-order modified flow θ̇ = leading + correction tracks the iterates to O(h²) only
while the correction, of order h, is small next to the leading term; when it is not (e.g.
Adam with h = 1e−2, ρ = 0.999: h·ρ/(1−ρ) ≈ 10) the order-1 flow can be worse than the
order-0 one. :func:`first_order_ratio` measures ‖correction‖₂/‖leading‖₂ with the field's
own pieces (:class:`~adabias.flows.vector_field.ModifiedField`) at a point; :func:`solve`
and :func:`solve_steps` call :func:`warn_outside_regime` at the starting point and warn
(:class:`AsymptoticRegimeWarning`) above :data:`REGIME_THRESHOLD` = 0.5.

Why at the starting point and not in the constructor: the ratio depends on the loss's
gradient and curvature there (Adam with ε = 1e12 moves at speed |∇E|/√ε and needs h ≈ 1e6
for an O(1) step), which no dimensionless coefficient such as h·ρ/(1−ρ) sees. A piecewise
field (CKS Theorem 3.1) is evaluated at the end of the horizon, where its memory is full.
Fields built with traced hyperparameters give a traced ratio: no check (and no warning).
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from adabias._validation import is_concrete
from adabias.flows.vector_field import Field, terms_of

PyTree = Any

__all__ = ["AsymptoticRegimeWarning", "REGIME_THRESHOLD", "first_order_ratio",
           "warn_outside_regime"]

#: A first-order term larger than this fraction of the leading term is outside the regime.
REGIME_THRESHOLD = 0.5


class AsymptoticRegimeWarning(UserWarning):
    """A modified flow is solved where its first-order term is not small next to its leading
    term: it need not track the iterates to O(h²) (nor better than the order-0 flow)."""


def first_order_ratio(field: Field, params: PyTree, t: float = 0.0) -> jax.Array | None:
    """‖correction‖₂/‖leading‖₂ of a :class:`~adabias.flows.vector_field.ModifiedField` (or a
    piecewise one) at (t, params); 0 where both vanish; None for a field without terms."""
    terms = terms_of(field)
    if terms is None:
        return None
    leading, correction = terms(jnp.asarray(t), params)
    size = lambda tree: jnp.linalg.norm(ravel_pytree(tree)[0])
    top, bottom = size(correction), size(leading)
    return jnp.where(top == 0.0, 0.0, top / bottom)


def warn_outside_regime(ratio: Any, what: str) -> None:
    """Warn (:class:`AsymptoticRegimeWarning`) when a concrete ``ratio`` exceeds
    :data:`REGIME_THRESHOLD`; ``what`` names the flow and its step size in the message."""
    if ratio is None or not is_concrete(ratio):
        return
    ratio = float(ratio)
    if ratio > REGIME_THRESHOLD:
        warnings.warn(
            f"{what}: the first-order term is {ratio:.3g}× the leading term at the starting "
            f"point (above {REGIME_THRESHOLD}): outside the asymptotic regime, the flow need "
            "not track the iterates to O(h²), nor better than the order-0 flow. Use a smaller "
            "step size (or memory h·β/(1−β), h·ρ/(1−ρ)).",
            AsymptoticRegimeWarning, stacklevel=3)
