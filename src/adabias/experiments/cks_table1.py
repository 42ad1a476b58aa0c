"""CKS Table 1: the exact bias of (2.3) against its two limit forms, and the sign of each cell.

bias_j = (h/2)·c_j·∇_j‖∇E‖₁,ε,  c_j = (1+β)/(1−β) − (1+ρ)/(1−ρ) + (1+ρ)/(1−ρ)·ε/(∇_jE² + ε).
Small ε (2.4): bias → (h/2)·A·H·sign(∇E), A = (1+β)/(1−β) − (1+ρ)/(1−ρ) (‖∇E‖₁ penalized
when A > 0, −‖∇E‖₁ when A < 0). Large ε (2.6)–(2.7): bias → (h/(2√ε))·(1+β)/(1−β)·H∇E
= (h/(4√ε))·(1+β)/(1−β)·∇‖∇E‖², ‖∇E‖₂² penalized. The relative error of each limit is
measured at one point of a small nonlinear loss as ε sweeps over twenty decades.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from adabias import flows
from adabias._validation import require_x64
from adabias.experiments.base import Context, Result, experiment, make_claim
from adabias.experiments.plotting import panels
from adabias.measures import hvp

SETTINGS = {
    "learning_rate": 1e-2,
    "cells": [[0.95, 0.9], [0.9, 0.999]],  # (β, ρ): β ≥ ρ and ρ > β
    "eps": [float(x) for x in np.logspace(-12, 8, 21)],
    "point": [0.8, -1.3, 0.5],
}


def _loss(theta: jax.Array) -> jax.Array:
    """A small nonlinear loss with gradient entries of order one at the chosen point."""
    return jnp.sum(theta ** 4) / 4 + jnp.prod(jnp.sin(theta)) + 0.5 * theta[0] * theta[1]


def _relative(a: jax.Array, b: jax.Array) -> float:
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@experiment(
    id="cks.table1", paper="CKS", title="Table 1: limit forms and signs of the bias term (2.3)",
    quick=SETTINGS, full=SETTINGS,
    claims={
        "cks.table1.small_eps": "As ε/∇E² → 0 the bias (2.3) tends to (2.4): "
            "(h/2){(1+β)/(1−β) − (1+ρ)/(1−ρ)}∇‖∇E‖₁ (relative error → 0).",
        "cks.table1.large_eps": "As ε/∇E² → ∞ the bias (2.3) tends to "
            "(h/(4√ε))(1+β)/(1−β)∇‖∇E‖² of (2.7), whatever ρ (relative error → 0).",
        "cks.table1.signs": "Signs of Table 1: small ε, β ≥ ρ penalizes ‖∇E‖₁ and ρ > β "
            "penalizes −‖∇E‖₁; large ε penalizes ‖∇E‖₂² in both rows.",
    },
)
def run(settings: dict, context: Context) -> Result:
    require_x64("cks.table1")
    h = settings["learning_rate"]
    theta = jnp.asarray(settings["point"])
    grad = jax.grad(_loss)(theta)
    eps_values = np.asarray(settings["eps"])
    errors, coefficients, data = {}, {}, {"eps": eps_values}
    for beta, rho in settings["cells"]:
        small, large, coef = [], [], []
        a = (1 + beta) / (1 - beta) - (1 + rho) / (1 - rho)
        small_limit = h / 2 * a * hvp(_loss, theta, jnp.sign(grad))
        for eps in eps_values:
            exact = flows.adam_bias(_loss, h, beta, rho, float(eps))(theta)
            large_limit = h / (2 * np.sqrt(eps)) * (1 + beta) / (1 - beta) * hvp(_loss, theta, grad)
            small.append(_relative(exact, small_limit))
            large.append(_relative(exact, large_limit))
            coef.append(np.asarray(flows.adam_bias_coefficient(grad, beta, rho, float(eps))))
        errors[beta, rho] = (np.array(small), np.array(large))
        coefficients[beta, rho] = np.array(coef)
        data[f"small_eps_error_b{beta}_r{rho}"] = errors[beta, rho][0]
        data[f"large_eps_error_b{beta}_r{rho}"] = errors[beta, rho][1]

    figure, axes = panels(1, 2, width=4.2, height=3.2)
    for index, (beta, rho) in enumerate(errors):
        small, large = errors[beta, rho]
        axes[0, 0].loglog(eps_values, small, "o-", ms=3, color=f"C{index}", label=f"β={beta}, ρ={rho}")
        axes[0, 1].loglog(eps_values, large, "o-", ms=3, color=f"C{index}", label=f"β={beta}, ρ={rho}")
    axes[0, 0].set_title("bias (2.3) vs small-ε limit (2.4)")
    axes[0, 1].set_title("bias (2.3) vs large-ε limit (2.7)")
    for ax in axes[0]:
        ax.set_xlabel("ε (gradient entries are of order 1)")
        ax.set_ylabel("relative error of the limit form")
        ax.legend()

    exp = run_entry
    smallest, largest = 0, len(eps_values) - 1
    small_end = {f"b{b}_r{r}": e[0][smallest] for (b, r), e in errors.items()}
    large_end = {f"b{b}_r{r}": e[1][largest] for (b, r), e in errors.items()}
    # → 0: below 1e-4 at the extreme ε, and 1000× smaller than five decades before (the
    # expected rate is linear in ε/∇E² resp. ∇E²/ε, i.e. 10⁵ over five decades)
    small_ok = all(e[0][smallest] < 1e-4 and e[0][smallest] < 1e-3 * e[0][smallest + 5]
                   for e in errors.values())
    large_ok = all(e[1][largest] < 1e-4 and e[1][largest] < 1e-3 * e[1][largest - 5]
                   for e in errors.values())
    claims = [
        make_claim(exp, "cks.table1.small_eps", small_ok,
                   {"eps": eps_values[smallest], "relative_error": small_end,
                    "relative_error_5_decades_earlier": {f"b{b}_r{r}": e[0][smallest + 5]
                                                         for (b, r), e in errors.items()}}, settings),
        make_claim(exp, "cks.table1.large_eps", large_ok,
                   {"eps": eps_values[largest], "relative_error": large_end,
                    "relative_error_5_decades_earlier": {f"b{b}_r{r}": e[1][largest - 5]
                                                         for (b, r), e in errors.items()}}, settings),
    ]
    signs, expected_ok = {}, True
    for (beta, rho), coef in coefficients.items():
        small_sign = float(np.sign(coef[smallest]).mean())
        large_sign = float(np.sign(coef[largest]).mean())
        signs[f"b{beta}_r{rho}"] = {"small_eps": small_sign, "large_eps": large_sign}
        expected_small = 1.0 if beta > rho else -1.0
        expected_ok &= (small_sign == expected_small) and (large_sign == 1.0)
    claims.append(make_claim(exp, "cks.table1.signs", expected_ok,
                             {"mean_sign_of_coefficient": signs}, settings))
    notes = [f"Loss E(θ) = Σθ⁴/4 + Πsin θ + θ₁θ₂/2 at θ = {settings['point']}, "
             f"|∇E| = {np.round(np.abs(np.asarray(grad)), 3).tolist()}; h = {h}."]
    return Result(figures={"limits": figure}, data={"limits": data}, claims=claims, notes=notes)


run_entry = run
