"""LWL: AdamE-λ reduces tr(Diag(H)^{1−λ}); larger λ, sparser solutions (diagonal net, label noise).

AdamE-λ (V = diag, S(v) = 1/(v^λ + ε); λ = 1/2 is Adam) with label noise on the diagonal net
of ``lwl.sharpness``, one ``ab.sweep`` over λ (traced) × seeds. On Γ,
tr(Diag(H)^{1−λ}) = Σ_j (4m₂ⱼ)^{1−λ}(|u_j|^{2−2λ} + |v_j|^{2−2λ}) ≥ 4^{1−λ}Σ m₂ⱼ^{1−λ}|w_j|^{1−λ}:
an ℓ_{1−λ} quasi-norm penalty on w at balance, so larger λ should favour sparser w.

Sparsity is measured by the effective support size s(w) = ‖w‖₁²/‖w‖₂² (between 1 and the
number of non-zero entries, equal to it when the non-zero entries have equal size): no
threshold to choose. The count of |w_j| > 0.05 is reported next to it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import adabias as ab
from adabias._validation import require_x64
from adabias.experiments.base import Context, Result, experiment, make_claim
from adabias.experiments.lwl_sharpness import QUICK as SHARPNESS_QUICK
from adabias.studies.curves import first_index_below
from adabias.problems.diagonal_net import diagonal_net_diag_power_trace
from adabias.experiments.plotting import panels
from adabias.problems import (
    diagonal_net_loss,
    diagonal_net_test_loss,
    diagonal_net_weights,
    init_diagonal_net,
    label_noise,
    sparse_regression_data,
)

QUICK = {
    **{key: SHARPNESS_QUICK[key] for key in ("d", "n", "k", "data_seed", "delta", "init_scale", "beta1",
                                             "beta2", "eps", "small_loss", "last_records")},
    "lams": [0.25, 0.5, 0.75], "adam_learning_rate": 0.004, "reference_v": 0.05,
    "num_steps": 80_000, "save_every": 2_000, "num_seeds": 2, "count_threshold": 0.05,
}
# toward the authors' scale (d = 100, 10⁶ steps, init 0.1·g); n = 15 < 2k·log(d/k) so that the
# minimizer of tr(H) on Γ (weighted ℓ1) is not the sparse w* and the two measures part
FULL = dict(QUICK, d=100, n=15, k=5, init_scale=0.1, num_steps=1_000_000, save_every=20_000, num_seeds=4,
            adam_learning_rate=0.002)


def effective_support(w: jax.Array) -> jax.Array:
    """s(w) = ‖w‖₁²/‖w‖₂² over the last axis: 1 for one non-zero entry, m for m equal ones."""
    return jnp.sum(jnp.abs(w), axis=-1) ** 2 / jnp.sum(w**2, axis=-1)


def matched_learning_rate(lam, adam_learning_rate: float, reference_v: float):
    """η_λ = η_Adam·v_ref^{λ−1/2}: AdamE-λ's step η·g/v^λ ≈ η·v^{1/2−λ} equals Adam's at v = v_ref."""
    return adam_learning_rate * reference_v ** (lam - 0.5)


@experiment(
    id="lwl.adame", paper="LWL", title="AdamE-λ: tr(Diag(H)^{1−λ}) decreases; sparsity grows with λ",
    quick=QUICK, full=FULL,
    claims={
        "lwl.adame.measure": "For every λ, label-noise AdamE-λ decreases tr(Diag(H)^{1−λ}) after the loss "
            "is small (seed mean over the last records < value when the loss first falls below the threshold).",
        "lwl.adame.sparsity": "The solution is sparser for larger λ: the effective support ‖w‖₁²/‖w‖₂² at "
            "the end (seed mean over the last records) decreases strictly as λ grows.",
    },
)
def run(settings: dict, context: Context) -> Result:
    require_x64("lwl.adame")
    batch, w_star = sparse_regression_data(jax.random.key(settings["data_seed"]), settings["n"], settings["d"],
                                           settings["k"], features="gaussian")
    z, lams = batch["z"], [float(lam) for lam in settings["lams"]]
    metrics = {f"measure_{lam:g}": (lambda p, q=1.0 - lam: diagonal_net_diag_power_trace(p, z, q)) for lam in lams}
    metrics["effective_support"] = lambda p: effective_support(diagonal_net_weights(p))
    metrics["count_above"] = lambda p: jnp.sum(jnp.abs(diagonal_net_weights(p)) > settings["count_threshold"])
    metrics["test_loss"] = lambda p: diagonal_net_test_loss(p, w_star)
    b1, b2, eps = settings["beta1"], settings["beta2"], settings["eps"]

    def make_optimizer(lam):
        rate = matched_learning_rate(lam, settings["adam_learning_rate"], settings["reference_v"])
        return ab.optim.adame(rate, lam, b1, b2, eps)

    result = ab.sweep(make_optimizer, diagonal_net_loss,
                      init_diagonal_net(jax.random.key(1), settings["d"], settings["init_scale"]),
                      settings["num_steps"], grid={"lam": lams}, num_seeds=settings["num_seeds"],
                      key=jax.random.key(2), batches=jax.tree.map(lambda x: x[None], batch),
                      noise=label_noise(settings["delta"]), save_every=settings["save_every"],
                      metrics=metrics, save_params=False, progress=context.progress)
    shape = result.grid_shape  # (λ, seed)
    trajectory = result.trajectory
    steps = np.asarray(trajectory.steps[0])
    seed_mean = lambda values: np.asarray(values).reshape(shape + (-1,)).mean(axis=1)  # (λ, record)
    loss = seed_mean(trajectory.loss)
    support = seed_mean(trajectory.metrics["effective_support"])
    count = seed_mean(trajectory.metrics["count_above"])
    test = seed_mean(trajectory.metrics["test_loss"])
    last = settings["last_records"]

    figure, axes = panels(1, 3, width=3.6, height=3.0)
    measure_numbers, measure_ok, data = {}, True, {"step": steps}
    for i, lam in enumerate(lams):
        own = seed_mean(trajectory.metrics[f"measure_{lam:g}"])[i]
        start = first_index_below(loss[i], settings["small_loss"], or_equal=True)
        late = float(own[-last:].mean())
        at_start = float(own[start]) if start >= 0 else float("nan")
        measure_ok &= start >= 0 and late < at_start
        measure_numbers[f"lam_{lam:g}"] = {"step_loss_small": int(steps[start]) if start >= 0 else None,
                                           "at_that_step": at_start, "late_mean": late}
        color = f"C{i}"
        axes[0, 0].plot(steps, own / own[0], color=color, label=f"λ = {lam:g}: tr(Diag H^{{{1 - lam:g}}})")
        axes[0, 1].plot(steps, support[i], color=color, label=f"λ = {lam:g}")
        axes[0, 2].semilogy(steps, loss[i], color=color, label=f"λ = {lam:g} train")
        axes[0, 2].semilogy(steps, test[i], "--", color=color, label=f"λ = {lam:g} ‖w − w*‖²")
        data.update({f"measure_lam{lam:g}": own, f"effective_support_lam{lam:g}": support[i],
                     f"count_above_lam{lam:g}": count[i], f"loss_lam{lam:g}": loss[i], f"test_lam{lam:g}": test[i]})
    axes[0, 0].set_title("own measure / its initial value")
    axes[0, 0].set_ylabel("tr(Diag(H)^{1−λ}) / value at step 0")
    axes[0, 1].set_title("effective support ‖w‖₁²/‖w‖₂²")
    axes[0, 1].set_ylabel("effective number of non-zeros")
    axes[0, 2].set_title("losses (seed mean)")
    axes[0, 2].set_ylabel("loss")
    for ax in axes[0]:
        ax.set_xlabel("step")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.legend(fontsize=7)
    figure.suptitle(f"AdamE-λ with label noise δ = {settings['delta']}, diagonal net d = {settings['d']}, "
                    f"n = {settings['n']}, k = {settings['k']} (seed mean of {settings['num_seeds']})")

    late_support = [float(support[i, -last:].mean()) for i in range(len(lams))]
    rates = [round(float(matched_learning_rate(lam, settings["adam_learning_rate"], settings["reference_v"])), 5)
             for lam in lams]
    late_count = [float(count[i, -last:].mean()) for i in range(len(lams))]
    exp = run_entry
    claims = [
        make_claim(exp, "lwl.adame.measure", measure_ok, measure_numbers, settings),
        make_claim(exp, "lwl.adame.sparsity", bool(np.all(np.diff(late_support) < 0)),
                   {"lams": lams, "late_effective_support": late_support,
                    f"late_count_above_{settings['count_threshold']:g}": late_count,
                    "late_test_loss": [float(test[i, -last:].mean()) for i in range(len(lams))]}, settings),
    ]
    notes = [
        f"Same problem and initialization as lwl.sharpness (d = {settings['d']}, n = {settings['n']}, "
        f"k = {settings['k']}, Gaussian features, δ = {settings['delta']}); β₁ = {b1}, β₂ = {b2}, ε = {eps}; "
        f"{settings['num_steps']} steps, {settings['num_seeds']} seeds; one sweep over λ × seeds.",
        f"Learning rates η_λ = {settings['adam_learning_rate']}·v_ref^(λ−1/2), v_ref = {settings['reference_v']} "
        "(≈ α·4m₂u² at |u| = 0.5): the per-coordinate step η·g/v^λ ≈ η·v^{1/2−λ} then matches Adam's at "
        f"v_ref; η = {rates}.",
        f"Sparsity: effective support ‖w‖₁²/‖w‖₂² (threshold-free); count of |w_j| > {settings['count_threshold']} "
        "reported alongside. 'Late' = mean over the last records and seeds.",
    ]
    return Result(figures={"adame": figure}, data={"curves": data}, claims=claims, notes=notes)


run_entry = run
