"""Label noise: SGD reduces tr(H), Adam reduces tr(Diag(H)^{1/2}) (Li, Wen, Lyu).

A diagonal net f(z) = ⟨u⊙u − v⊙v, z⟩ fits n < d samples of a sparse regression, so its
interpolators form a manifold Γ. With label noise y ← y + δξ (ξ = ±1, fresh every step) the
iterates drift along Γ, each optimizer reducing its own sharpness measure once the loss is
small: SGD tr(H), Adam tr(Diag(H)^{1/2}). Both are recorded along training with the diagonal net's closed form
on Γ (`ab.problems.diagonal_net_diag_power_trace`, power 1 and 1/2), which the generic
`ab.measures.diag_power_trace` (exact Hessian diagonal of any loss) matches on Γ.

Adam is written as LWL's adaptive gradient method (`ab.optim.agm` with V = diag and
S(v) = 1/(√v + ε): no bias correction, ε outside the root). Each optimizer trains two
label-noise seeds as one `ab.sweep`.

    python examples/label_noise_sharpness.py
"""

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import adabias as ab  # noqa: E402
from adabias.problems import (diagonal_net_balanced_point, diagonal_net_diag_power_trace,  # noqa: E402
                              diagonal_net_loss, init_diagonal_net, label_noise,
                              sparse_regression_data)


def main(num_steps=80_000, save_every=8_000, num_seeds=2, d=10, n=5, k=2, delta=0.5,
         small_loss=1e-2):
    # y = Z w*, w* = (1, …, 1, 0, …, 0) with k ones, Gaussian features z ∈ R^d
    batch, w_star = sparse_regression_data(jax.random.key(0), n, d, k, features="gaussian")
    z = batch["z"]
    params0 = init_diagonal_net(jax.random.key(1), d, scale=0.5)  # u = v: w = 0 at the start

    metrics = {"tr_H": lambda p: diagonal_net_diag_power_trace(p, z, 1.0),
               "tr_root_diag_H": lambda p: diagonal_net_diag_power_trace(p, z, 0.5)}
    optimizers = {
        "SGD": (lambda learning_rate: ab.optim.gd(learning_rate), 0.05),
        "Adam": (lambda learning_rate: ab.optim.agm(learning_rate, 0.9, 0.95, ab.optim.diagonal,
                                                    ab.optim.inverse_root(1e-8)), 0.004),
    }
    results = {}
    for name, (make_optimizer, learning_rate) in optimizers.items():
        results[name] = ab.sweep(
            make_optimizer, diagonal_net_loss, params0, num_steps,
            grid={"learning_rate": [learning_rate]}, num_seeds=num_seeds, key=jax.random.key(2),
            batches=jax.tree.map(lambda x: x[None], batch),  # one batch: the full data
            noise=label_noise(delta),                        # y ← y + δξ at every step
            save_every=save_every, metrics=metrics)

    steps = np.asarray(results["SGD"].trajectory.steps[0])
    print("seed means      SGD: loss    tr(H)  tr(√DiagH)   Adam: loss    tr(H)  tr(√DiagH)")
    means = {name: {key: np.asarray(values).mean(axis=0)
                    for key, values in dict(r.trajectory.metrics, loss=r.trajectory.loss).items()}
             for name, r in results.items()}
    for i, step in enumerate(steps):
        s, a = means["SGD"], means["Adam"]
        print(f"step {int(step):6d}  {s['loss'][i]:10.2e} {s['tr_H'][i]:8.3f} {s['tr_root_diag_H'][i]:11.3f}"
              f"  {a['loss'][i]:10.2e} {a['tr_H'][i]:8.3f} {a['tr_root_diag_H'][i]:11.3f}")

    # LWL's claim, as adabias tests it: once the loss is small, each optimizer's own measure
    # decreases. (Which optimizer ends lower is another matter: tr(Diag(H)^{1/2}) is not convex
    # on Γ, so Adam stops at the local minimizer its path leads to.)
    for name, key, label in (("SGD", "tr_H", "tr(H)"), ("Adam", "tr_root_diag_H", "tr(Diag(H)^1/2)")):
        m = means[name]
        first = int(np.argmax(m["loss"] <= small_loss)) if np.any(m["loss"] <= small_loss) else -1
        if first < 0:
            print(f"{name}: the loss never fell to {small_loss:g}")
            continue
        print(f"{name}: {label} {m[key][first]:.3f} at step {int(steps[first])} (first loss ≤ "
              f"{small_loss:g}) → {m[key][-1]:.3f} at the end")

    # on Γ the closed form equals the measure from the exact Hessian diagonal of the loss:
    # check it at the sparse interpolant u = √w*, v = 0
    on_manifold = diagonal_net_balanced_point(w_star)
    exact = ab.measures.diag_power_trace(diagonal_net_loss, on_manifold, batch, power=0.5)
    print(f"at u = √w*, v = 0: tr(Diag(H)^1/2) exact {float(exact):.6f}, closed form "
          f"{float(diagonal_net_diag_power_trace(on_manifold, z, 0.5)):.6f}")
    return means


if __name__ == "__main__":
    main()
