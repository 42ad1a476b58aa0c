"""CKS's modified flow tracks Adam's iterates to O(h²); ε-signGD only to O(h).

For full-batch Adam with step h, the flow (2.2)–(2.3) of Cattaneo, Klusowski and Shigida,

    θ̇_j = −(∂_jE + bias_j)/√(∂_jE² + ε),
    bias_j = (h/2){(1+β)/(1−β) − (1+ρ)/(1−ρ) + (1+ρ)/(1−ρ)·ε/(∂_jE² + ε)} ∂_j‖∇E‖₁,ε,

satisfies sup_{n ≤ T/h} ‖θ(nh) − θ⁽ⁿ⁾‖∞ = O(h²); its leading-order part, ε-signGD
(`order=0`), is O(h) away. This script measures both errors on the bilinear model of CKS §5
for several h and fits the order (the slope of log error against log h) with
`ab.flows.fit_order`. O(h²) effects need float64.

    python examples/modified_flow_order.py
"""

import jax

jax.config.update("jax_enable_x64", True)  # before any array is made

import jax.numpy as jnp  # noqa: E402

import adabias as ab  # noqa: E402

BETA, RHO, EPS = 0.9, 0.95, 1e-6  # CKS's β (first moment), ρ (second moment), ε


def main(step_sizes=(2e-3, 1e-3, 5e-4, 2.5e-4), horizon=0.4):
    loss_fn = ab.problems.bilinear_loss                    # E(θ) = ½(y − θ₁θ₂x)²
    params0 = jnp.asarray(ab.problems.BILINEAR_START)      # θ⁽⁰⁾ = (2.8, 3.5)
    num_steps = ab.flows.step_counts(step_sizes, horizon)  # N = T/h for each h

    # Adam's iterates θ⁽ⁿ⁾, n = 0 … N, for every h: one sweep over the learning rate
    (iterates,) = ab.flows.iterates_per_step_size(
        lambda learning_rate: ab.optim.adam(learning_rate, BETA, RHO, EPS),
        loss_fn, params0, step_sizes, num_steps)

    # the flows θ(nh): solve_steps traces h, so one compilation serves every step size
    errors = {}
    for order in (1, 0):
        flows = ab.flows.solve_steps(
            lambda h: ab.flows.adam_full_batch(loss_fn, h, BETA, RHO, EPS, order=order),
            params0, step_sizes, num_steps)
        errors[order] = ab.flows.global_errors(flows, iterates)  # sup_n ‖θ(nh) − θ⁽ⁿ⁾‖∞

    print("      h   error, (2.2)-(2.3)   error, ε-signGD")
    for i, h in enumerate(step_sizes):
        print(f"{h:.2e}   {errors[1][i]:.3e}            {errors[0][i]:.3e}")
    fits = {order: ab.flows.fit_order(step_sizes, errors[order]) for order in (1, 0)}
    for order, name, expected in ((1, "modified flow (2.2)-(2.3)", 2), (0, "ε-signGD", 1)):
        fit = fits[order]
        print(f"{name}: fitted order {fit.order:.3f}, 95% interval "
              f"[{fit.interval[0]:.3f}, {fit.interval[1]:.3f}] (theory: {expected})")
    return fits


if __name__ == "__main__":
    main()
