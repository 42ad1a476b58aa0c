"""Gradient descent and heavy-ball momentum (CKS Example 2.3).

Heavy ball (Ghosh et al. 2023, CKS eq. (1.1) with the signs restored):

    θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ − h∇E(θ⁽ⁿ⁾) + β(θ⁽ⁿ⁾ − θ⁽ⁿ⁻¹⁾),   θ⁽⁻¹⁾ = θ⁽⁰⁾,

which is ``optax.sgd(h, momentum=β)``: with t⁽ⁿ⁾ = g⁽ⁿ⁾ + βt⁽ⁿ⁻¹⁾ the update is −h t⁽ⁿ⁾
and θ⁽ⁿ⁾ − θ⁽ⁿ⁻¹⁾ = −h t⁽ⁿ⁻¹⁾.
"""

from __future__ import annotations

import optax

from adabias._validation import check_learning_rate, check_unit_interval
from adabias.optim.types import ScalarOrSchedule


def gd(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
    """Plain (full-batch or stochastic) gradient descent: θ ← θ − h∇E(θ)."""
    check_learning_rate(learning_rate)
    return optax.sgd(learning_rate)


def heavy_ball(learning_rate: ScalarOrSchedule, beta: float) -> optax.GradientTransformation:
    """Heavy ball θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ − h∇E(θ⁽ⁿ⁾) + β(θ⁽ⁿ⁾ − θ⁽ⁿ⁻¹⁾) (CKS (1.1))."""
    check_learning_rate(learning_rate)
    check_unit_interval("beta", beta)
    return optax.sgd(learning_rate, momentum=beta)
