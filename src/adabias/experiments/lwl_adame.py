"""LWL: AdamE-λ reduces tr(Diag(H)^{1−λ}); larger λ, sparser solutions (diagonal net, label noise).

AdamE-λ (LWL Table 1: V = diag, S(v) = 1/(v^λ + ε); λ = 1/2 is Adam) with label noise on the
diagonal net of ``lwl.sharpness``, one sweep over λ (traced) × seeds. On Γ,
tr(Diag(H)^{1−λ}) = Σ_j (4m₂ⱼ)^{1−λ}(|u_j|^{2−2λ} + |v_j|^{2−2λ}) ≥ 4^{1−λ}Σ m₂ⱼ^{1−λ}|w_j|^{1−λ}:
an ℓ_{1−λ} quasi-norm penalty on w at balance, so larger λ should favour sparser w.

Sparsity is measured by the effective support size s(w) = ‖w‖₁²/‖w‖₂² (between 1 and the
number of non-zero entries, equal to it when the non-zero entries have equal size): no
threshold to choose. The count of |w_j| > 0.05 is reported next to it.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

import adabias as ab
from adabias._validation import require_x64
from adabias.experiments.base import ClaimSpec, Context, Decision, Experiment, Tiers, Verdict
from adabias.plot import diag_power_trace_label, panels
from adabias.plot.measures import step_axes, train_and_test
from adabias.problems.diagonal_net import (
    diagonal_net_diag_power_trace,
    diagonal_net_test_loss,
    diagonal_net_weights,
    effective_support,
)
from adabias.studies import label_noise
from adabias.studies.label_noise import DiagonalNetLabelNoise


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdamESettings(DiagonalNetLabelNoise):
    """The shared diagonal-net problem and training (as ``lwl.sharpness``), and the λ sweep."""

    lams: tuple[float, ...] = (0.25, 0.5, 0.75)  # AdamE's λ (one sweep, λ traced)
    reference_v: float = 0.05  # v at which every λ's step matches Adam's (≈ α·4m₂u² at |u| = 0.5)
    count_threshold: float = 0.05  # |w_j| above this counts as a non-zero (reported only)


FULL = label_noise.toward_authors_scale(AdamESettings())
TIERS = Tiers(quick=AdamESettings(), medium=FULL, full=FULL)


def matched_learning_rate(lam, adam_learning_rate: float, reference_v: float):
    """η_λ = η_Adam·v_ref^{λ−1/2}: AdamE-λ's step η·g/v^λ ≈ η·v^{1/2−λ} equals Adam's at v = v_ref."""
    return adam_learning_rate * reference_v ** (lam - 0.5)


class AdamERecord(NamedTuple):
    """Seed means along training, one row per λ: (λ, record)."""

    steps: np.ndarray  # (record,)
    own_measure: np.ndarray  # tr(Diag(H)^{1−λ}) of the run with that λ
    effective_support: np.ndarray  # ‖w‖₁²/‖w‖₂²
    count_above: np.ndarray  # number of |w_j| > count_threshold
    loss: np.ndarray  # training loss
    test_loss: np.ndarray  # ‖w − w*‖²


def measure(settings: AdamESettings, context: Context) -> AdamERecord:
    require_x64("lwl.adame")
    batch, w_star = label_noise.diagonal_net_data(settings)
    z, lams = batch["z"], [float(lam) for lam in settings.lams]
    metrics = {f"measure_{lam:g}": (lambda p, q=1.0 - lam: diagonal_net_diag_power_trace(p, z, q)) for lam in lams}
    metrics["effective_support"] = lambda p: effective_support(diagonal_net_weights(p))
    metrics["count_above"] = lambda p: jnp.sum(jnp.abs(diagonal_net_weights(p)) > settings.count_threshold)
    metrics["test_loss"] = lambda p: diagonal_net_test_loss(p, w_star)

    def make_optimizer(lam):
        rate = matched_learning_rate(lam, settings.adam_learning_rate, settings.reference_v)
        return ab.optim.adame(rate, lam, settings.beta1, settings.beta2, settings.eps)

    result = label_noise.train_diagonal_net(settings, batch, make_optimizer, grid={"lam": lams},
                                            metrics=metrics, progress=context.progress)
    trajectory = result.trajectory
    mean = lambda values: label_noise.seed_mean(values, result.grid_shape)  # noqa: E731  (λ, record)
    own = np.stack([mean(trajectory.metrics[f"measure_{lam:g}"])[i] for i, lam in enumerate(lams)])
    return AdamERecord(np.asarray(trajectory.steps[0]), own, mean(trajectory.metrics["effective_support"]),
                       mean(trajectory.metrics["count_above"]), mean(trajectory.loss),
                       mean(trajectory.metrics["test_loss"]))


def decide(settings: AdamESettings, record: AdamERecord) -> Decision:
    lams, last = [float(lam) for lam in settings.lams], settings.last_records
    drops = [label_noise.measure_drop(record.own_measure[i], record.loss[i], small_loss=settings.small_loss,
                                      last_records=last) for i in range(len(lams))]
    late = lambda values: [float(values[i, -last:].mean()) for i in range(len(lams))]  # noqa: E731
    late_support = late(record.effective_support)
    rates = [round(float(matched_learning_rate(lam, settings.adam_learning_rate, settings.reference_v)), 5)
             for lam in lams]
    verdicts = [
        Verdict("lwl.adame.measure", all(drop.decreased for drop in drops),
                {f"lam_{lam:g}": drop.numbers(record.steps) for lam, drop in zip(lams, drops)},
                "; ".join(f"λ = {lam:g}: " + drop.reason(f"tr(Diag(H)^{1 - lam:g})", settings.small_loss)
                          for lam, drop in zip(lams, drops) if not drop.decreased)),
        Verdict("lwl.adame.sparsity", bool(np.all(np.diff(late_support) < 0)),
                {"lams": lams, "late_effective_support": late_support,
                 f"late_count_above_{settings.count_threshold:g}": late(record.count_above),
                 "late_test_loss": late(record.test_loss)},
                "" if np.all(np.diff(late_support) < 0) else
                f"late effective support {np.round(late_support, 3).tolist()} for λ = {lams} does not decrease"),
    ]
    s = settings
    notes = [
        f"Same problem and initialization as lwl.sharpness (d = {s.d}, n = {s.n}, "
        f"k = {s.k}, Gaussian features, δ = {s.delta}); β₁ = {s.beta1}, β₂ = {s.beta2}, ε = {s.eps}; "
        f"{s.num_steps} steps, {s.num_seeds} seeds; one sweep over λ × seeds.",
        f"Learning rates η_λ = {s.adam_learning_rate}·v_ref^(λ−1/2), v_ref = {s.reference_v} "
        "(≈ α·4m₂u² at |u| = 0.5): the per-coordinate step η·g/v^λ ≈ η·v^{1/2−λ} then matches Adam's at "
        f"v_ref; η = {rates}.",
        f"Sparsity: effective support ‖w‖₁²/‖w‖₂² (threshold-free); count of |w_j| > {s.count_threshold} "
        "reported alongside. 'Late' = mean over the last records and seeds.",
    ]
    return Decision(verdicts, notes)


def plot(settings: AdamESettings, record: AdamERecord) -> dict:
    steps = record.steps
    figure, axes = panels(1, 3, width=3.6, height=3.0)
    for i, lam in enumerate(float(lam) for lam in settings.lams):
        color, own = f"C{i}", record.own_measure[i]
        axes[0, 0].plot(steps, own / own[0], color=color, label=f"λ = {lam:g}: " + diag_power_trace_label(f"{1 - lam:g}"))
        axes[0, 1].plot(steps, record.effective_support[i], color=color, label=f"λ = {lam:g}")
        train_and_test(axes[0, 2], steps, record.loss[i], record.test_loss[i], color=color,
                       train_label=f"λ = {lam:g} train", test_label=f"λ = {lam:g} ‖w − w*‖²")
    step_axes(axes[0], ["own measure / its initial value", "effective support ‖w‖₁²/‖w‖₂²",
                        "losses (seed mean)"],
              [diag_power_trace_label("1-\\lambda") + " / value at step 0", "effective number of non-zeros", "loss"])
    figure.suptitle(f"AdamE-λ with label noise δ = {settings.delta}, diagonal net d = {settings.d}, "
                    f"n = {settings.n}, k = {settings.k} (seed mean of {settings.num_seeds})")
    return {"adame": figure}


def tables(settings: AdamESettings, record: AdamERecord) -> dict:
    data = {"step": record.steps}
    for i, lam in enumerate(float(lam) for lam in settings.lams):
        data.update({f"measure_lam{lam:g}": record.own_measure[i],
                     f"effective_support_lam{lam:g}": record.effective_support[i],
                     f"count_above_lam{lam:g}": record.count_above[i], f"loss_lam{lam:g}": record.loss[i],
                     f"test_lam{lam:g}": record.test_loss[i]})
    return {"curves": data}


EXPERIMENT = Experiment(
    id="lwl.adame", paper="LWL", title="AdamE-λ: tr(Diag(H)^{1−λ}) decreases; sparsity grows with λ",
    tiers=TIERS,
    claims={
        "lwl.adame.measure": ClaimSpec(
            "For every λ, label-noise AdamE-λ decreases tr(Diag(H)^{1−λ}) after the loss "
            "is small (seed mean over the last records < value when the loss first falls below the threshold).",
            "theory", "for every λ: seed mean of tr(Diag(H)^{1−λ}) over the last 5 records < its seed "
            "mean at the first record where the seed-mean loss ≤ 1e-2"),
        "lwl.adame.sparsity": ClaimSpec(
            "The solution is sparser for larger λ: the effective support ‖w‖₁²/‖w‖₂² at "
            "the end (seed mean over the last records) decreases strictly as λ grows.",
            "paper", "seed-mean final effective support strictly decreasing in λ"),
    },
    measure=measure, decide=decide, plot=plot, tables=tables,
)
