"""Adam and RMSProp in the convention of CKS Definition 2.1 (ε inside the square root).

    ν⁽ⁿ⁺¹⁾ = ρ ν⁽ⁿ⁾ + (1−ρ) g⁽ⁿ⁾²,   m⁽ⁿ⁺¹⁾ = β m⁽ⁿ⁾ + (1−β) g⁽ⁿ⁾,
    θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ − h · (m⁽ⁿ⁺¹⁾/(1−βⁿ⁺¹)) / √(ν⁽ⁿ⁺¹⁾/(1−ρⁿ⁺¹) + ε)          (2.1)

With ``eps_inside_sqrt=False`` the denominator is √ν̂ + ε (Kingma–Ba); with
``bias_correction=False`` the factors 1/(1−βⁿ⁺¹), 1/(1−ρⁿ⁺¹) are dropped (the LWL
convention). The bias-corrected forms are ``optax.scale_by_adam`` exactly
(``eps=0, eps_root=ε`` for ε inside); the others are the AGM transform of
:mod:`adabias.optim.agm`.
"""

from __future__ import annotations

import optax

from adabias._validation import check_learning_rate, check_positive, check_unit_interval
from adabias.optim.agm import diagonal, inverse_root, scale_by_agm
from adabias.optim.types import ScalarOrSchedule


def scale_by_cks_adam(
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_inside_sqrt: bool = True,
    bias_correction: bool = True,
) -> optax.GradientTransformation:
    """The direction m̂/√(ν̂ + ε) of (2.1) (or m̂/(√ν̂ + ε)), before the step size.

    β, ρ ∈ [0, 1) and ε > 0 must be real numbers (checked here, so :func:`adam` and
    :func:`rmsprop` check them too)."""
    check_unit_interval("beta1", beta1)
    check_unit_interval("beta2", beta2)
    check_positive("eps", eps)
    if bias_correction:
        if eps_inside_sqrt:
            return optax.scale_by_adam(b1=beta1, b2=beta2, eps=0.0, eps_root=eps)
        return optax.scale_by_adam(b1=beta1, b2=beta2, eps=eps, eps_root=0.0)
    return scale_by_agm(
        beta1, beta2, diagonal, inverse_root(eps, eps_inside_sqrt=eps_inside_sqrt)
    )


def adam(
    learning_rate: ScalarOrSchedule,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_inside_sqrt: bool = True,
    bias_correction: bool = True,
) -> optax.GradientTransformation:
    """Adam of CKS Definition 2.1, eq. (2.1): θ ← θ − h·m̂/√(ν̂ + ε).

    Args:
      learning_rate: step size h (a number, a traced scalar, or an optax schedule).
      beta1: first-moment decay β ∈ [0, 1).
      beta2: second-moment decay ρ ∈ [0, 1).
      eps: ε > 0, inside the root by default.
      eps_inside_sqrt: ``False`` gives the Kingma–Ba denominator √ν̂ + ε.
      bias_correction: ``False`` drops the 1/(1−βⁿ⁺¹), 1/(1−ρⁿ⁺¹) factors.
    """
    check_learning_rate(learning_rate)
    return optax.chain(
        scale_by_cks_adam(
            beta1,
            beta2,
            eps,
            eps_inside_sqrt=eps_inside_sqrt,
            bias_correction=bias_correction,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    beta2: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_inside_sqrt: bool = True,
    bias_correction: bool = True,
) -> optax.GradientTransformation:
    """RMSProp as Adam with β = 0 (CKS): θ ← θ − h·g/√(ν̂ + ε)."""
    return adam(
        learning_rate,
        0.0,
        beta2,
        eps,
        eps_inside_sqrt=eps_inside_sqrt,
        bias_correction=bias_correction,
    )
