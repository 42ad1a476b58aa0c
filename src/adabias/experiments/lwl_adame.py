"""LWL: AdamE-λ reduces tr(Diag(H)^{1−λ}); larger λ, sparser solutions (diagonal net, label noise).

AdamE-λ (LWL Table 1: V = diag, S(v) = 1/(v^λ + ε); λ = 1/2 is Adam) with label noise on the
diagonal net of ``lwl.sharpness``, one sweep over λ (traced) × seeds. On Γ,
tr(Diag(H)^{1−λ}) = Σ_j (4m₂ⱼ)^{1−λ}(|u_j|^{2−2λ} + |v_j|^{2−2λ}) ≥ 4^{1−λ}Σ m₂ⱼ^{1−λ}|w_j|^{1−λ}:
an ℓ_{1−λ} quasi-norm penalty on w at balance, so larger λ should favour sparser w.

The paper's sparsity statement is about recovery: its sparse-regression figure compares how
many samples each method needs. "Sparser for larger λ at a fixed n" is not implied (Σ|w|^{1−λ}
on {Zw = y} is concave, a local minimum at every sparse vertex; retired, DESIGN §4.3 "LWL"; its
numbers stay in the table ``retired_sparsity``, effective support s(w) = ‖w‖₁²/‖w‖₂²). The claim
``lwl.adame.sample_complexity`` follows the paper on the authors' sparse-regression protocol
(DESIGN §4.4 "LWL"): the sample complexity n*(λ), the smallest n of the grid whose mean final
test loss ‖w − w*‖² is ≤ 0.1·mean‖w*‖², is non-increasing in λ and below SGD's.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import adabias as ab
from adabias._validation import require_x64
from adabias.experiments.base import ClaimSpec, Context, Decision, Experiment, Tiers, Verdict
from adabias.plot import diag_power_trace_label, panels
from adabias.plot.measures import step_axes, train_and_test
from adabias.problems.diagonal_net import (
    diagonal_net_diag_power_trace,
    diagonal_net_loss,
    diagonal_net_test_loss,
    diagonal_net_weights,
    effective_support,
    init_diagonal_net,
    sparse_regression_data,
)
from adabias.studies import label_noise
from adabias.studies import sample_complexity as study
from adabias.studies.label_noise import DiagonalNetLabelNoise


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdamESettings(DiagonalNetLabelNoise):
    """The shared diagonal-net problem and training (as ``lwl.sharpness``), and the λ sweep."""

    lams: tuple[float, ...] = (0.25, 0.5, 0.75)  # AdamE's λ (one sweep, λ traced)
    reference_v: float = 0.05  # v at which every λ's step matches Adam's (≈ α·4m₂u² at |u| = 0.5)
    count_threshold: float = 0.05  # |w_j| above this counts as a non-zero (reported only)
    # sample complexity (claim lwl.adame.sample_complexity), the authors' protocol at small scale
    sc_d: int = 100
    sc_k: int = 3
    sc_ns: tuple[int, ...] = (10, 13, 16, 20)
    sc_num_datasets: int = 4  # 8 runs per point: with 4, two random draws gave different n*
    sc_num_seeds: int = 2
    sc_num_steps: int = 15_000
    sc_save_every: int = 5_000
    sc_init_scale: float = 0.1  # u = v = 0.1·g
    sc_adam_learning_rate: float = 0.01  # Adam's η; AdamE-λ: matched_learning_rate(λ, this, reference_v)
    sc_sgd_learning_rate: float = 0.1
    sc_beta2: float = 0.95
    sc_eps: float = 1e-6
    sc_threshold_fraction: float = 0.1  # τ = this × mean ‖w*‖² over the data sets


FULL = label_noise.toward_authors_scale(AdamESettings())
FULL = dataclasses.replace(FULL, sc_d=1000, sc_k=5, sc_ns=(20, 30, 40, 50, 60, 70), sc_num_datasets=4,
                           sc_num_seeds=2, sc_num_steps=1_000_000, sc_save_every=50_000)
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
    names: tuple  # the methods of the sample-complexity study: AdamE-λ for every λ, then SGD
    final_test_loss: np.ndarray  # (method, n, run): ‖w − w*‖² at the last step
    threshold: float  # τ


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
    names, final, threshold = measure_sample_complexity(settings, context)
    return AdamERecord(np.asarray(trajectory.steps[0]), own, mean(trajectory.metrics["effective_support"]),
                       mean(trajectory.metrics["count_above"]), mean(trajectory.loss),
                       mean(trajectory.metrics["test_loss"]), names, final, threshold)


def _method_name(lam: float) -> str:
    return "Adam" if lam == 0.5 else f"AdamE-{lam:g}"


def measure_sample_complexity(settings: AdamESettings, context: Context):
    """Final test losses (method, n, run) of AdamE-λ for every λ and of SGD on the authors'
    protocol: nested, padded, stacked data sets (``studies.sample_complexity``)."""
    s = settings
    study_settings = study.LabelNoiseSampleComplexity(
        ns=s.sc_ns, delta=s.delta, init_scale=s.sc_init_scale, num_datasets=s.sc_num_datasets,
        num_seeds=s.sc_num_seeds, num_steps=s.sc_num_steps, save_every=s.sc_save_every,
        adam_learning_rate=s.sc_adam_learning_rate, beta1=s.beta1, beta2=s.sc_beta2, eps=s.sc_eps,
        sgd_learning_rate=s.sc_sgd_learning_rate)
    data, w_stars = study.stacked_data(
        lambda key: sparse_regression_data(key, max(s.sc_ns), s.sc_d, s.sc_k, weights="uniform"),
        jax.random.key(study_settings.data_seed), s.sc_num_datasets)
    init_copy = lambda key: init_diagonal_net(key, s.sc_d, s.sc_init_scale)  # noqa: E731
    test_loss = jax.jit(jax.vmap(jax.vmap(diagonal_net_test_loss)))  # (seeds, copies)
    lams = [float(lam) for lam in s.lams]

    def make_adame(lam):  # λ traced: every λ in one sweep, η_λ matched to Adam's
        return ab.optim.adame(matched_learning_rate(lam, s.sc_adam_learning_rate, s.reference_v), lam,
                              s.beta1, s.sc_beta2, s.sc_eps)

    def make_sgd(learning_rate):
        return ab.optim.gd(learning_rate)

    names = tuple(_method_name(lam) for lam in lams) + ("SGD",)
    # every n at once: the padded data sets of all n stacked as copies (n-major), one sweep per kind
    batches = jax.tree.map(lambda *xs: jnp.concatenate(xs), *[study.stacked_padded(data, n) for n in s.sc_ns])
    stars = jnp.tile(w_stars, (len(s.sc_ns), 1))
    final = {}
    for kind in context.track(["AdamE", "SGD"], "lwl.adame sample complexity"):
        if kind == "AdamE":
            result = study.train_copies(make_adame, None, diagonal_net_loss, init_copy, batches, study_settings,
                                        grid={"lam": lams})
        else:
            result = study.train_copies(make_sgd, s.sc_sgd_learning_rate, diagonal_net_loss, init_copy, batches,
                                        study_settings)
        last = jax.tree.map(lambda x: x[:, -1], result.trajectory.params)  # (members, copies, d)
        members = jax.tree.leaves(last)[0].shape[0]  # grid points × seeds, seeds fastest
        losses = np.asarray(test_loss(last, jnp.broadcast_to(stars, (members,) + stars.shape)))
        # (grid point, seed, n, data set) -> per (grid point, n): the runs seeds × data sets
        per_point = losses.reshape(-1, s.sc_num_seeds, len(s.sc_ns), s.sc_num_datasets)
        for name, rows in zip(names[:-1] if kind == "AdamE" else ["SGD"], per_point):
            for i, n in enumerate(s.sc_ns):
                final[name, n] = rows[:, i].ravel()
    table = np.asarray([[final[name, n] for n in s.sc_ns] for name in names])
    threshold = s.sc_threshold_fraction * float(jnp.mean(jnp.sum(w_stars**2, axis=-1)))
    return names, table, threshold


def decide(settings: AdamESettings, record: AdamERecord) -> Decision:
    lams, last = [float(lam) for lam in settings.lams], settings.last_records
    drops = [label_noise.measure_drop(record.own_measure[i], record.loss[i], small_loss=settings.small_loss,
                                      last_records=last) for i in range(len(lams))]
    late = lambda values: [float(values[i, -last:].mean()) for i in range(len(lams))]  # noqa: E731
    late_support = late(record.effective_support)
    rates = [round(float(matched_learning_rate(lam, settings.adam_learning_rate, settings.reference_v)), 5)
             for lam in lams]
    ns = list(settings.sc_ns)
    mean_final = record.final_test_loss.mean(axis=-1)  # (method, n)
    n_star = {name: study.sample_complexity(ns, list(mean_final[i]), record.threshold)
              for i, name in enumerate(record.names)}
    adame_stars = [n_star[_method_name(lam)] for lam in lams]
    non_increasing = all(b <= a for a, b in zip(adame_stars, adame_stars[1:]))
    below_sgd = all(v < n_star["SGD"] for v in adame_stars)
    sc_parts = []
    if not non_increasing:
        sc_parts.append(f"n*(λ) = {adame_stars} for λ = {lams} is not non-increasing")
    if not below_sgd:
        sc_parts.append(f"not every n*(λ) = {adame_stars} is below n*(SGD) = {n_star['SGD']:g}")
    verdicts = [
        Verdict("lwl.adame.sample_complexity", non_increasing and below_sgd,
                {"n_star_sgd": n_star["SGD"], **{f"n_star_lam_{lam:g}": v for lam, v in zip(lams, adame_stars)},
                 "n_star_by_lam": adame_stars, "lams": lams,
                 "threshold": record.threshold, "ns": ns,
                 **{f"mean_final_test_loss_{name}": mean_final[i].tolist() for i, name in enumerate(record.names)},
                 **{f"fraction_recovered_{name}": np.mean(record.final_test_loss[i] <= record.threshold, axis=-1).tolist()
                    for i, name in enumerate(record.names)},
                 "runs_per_point": record.final_test_loss.shape[-1]},
                "; ".join(sc_parts) + (f" (mean final test loss by method and n: "
                                       f"{ {name: np.round(mean_final[i], 4).tolist() for i, name in enumerate(record.names)} })"
                                       if sc_parts else "")),
        Verdict("lwl.adame.measure", all(drop.decreased for drop in drops),
                {"lams_decreased": sum(drop.decreased for drop in drops), "lams": len(lams),
                 "max_late_over_start": max(drop.late / drop.at_start for drop in drops),
                 **{f"lam_{lam:g}": drop.numbers(record.steps) for lam, drop in zip(lams, drops)}},
                "; ".join(f"λ = {lam:g}: " + drop.reason(f"tr(Diag(H)^{1 - lam:g})", settings.small_loss)
                          for lam, drop in zip(lams, drops) if not drop.decreased)),
    ]
    s = settings
    notes = [
        f"Same problem and initialization as lwl.sharpness (d = {s.d}, n = {s.n}, "
        f"k = {s.k}, Gaussian features, δ = {s.delta}); β₁ = {s.beta1}, β₂ = {s.beta2}, ε = {s.eps}; "
        f"{s.num_steps} steps, {s.num_seeds} seeds; one sweep over λ × seeds.",
        f"Learning rates η_λ = {s.adam_learning_rate}·v_ref^(λ−1/2), v_ref = {s.reference_v} "
        "(≈ α·4m₂u² at |u| = 0.5): the per-coordinate step η·g/v^λ ≈ η·v^{1/2−λ} then matches Adam's at "
        f"v_ref; η = {rates}.",
        f"Effective support ‖w‖₁²/‖w‖₂² and count of |w_j| > {s.count_threshold} (late = mean over the last "
        f"records and seeds): the retired claim lwl.adame.sparsity, table retired_sparsity: {late_support}.",
        f"Sample complexity (authors' protocol, DESIGN §4.4): diagonal net d = {s.sc_d}, k = {s.sc_k}, w* entries "
        f"U(−1, 1) with |w*ᵢ| ≥ 1e-2, Rademacher z, δ = {s.delta}, init u = v = {s.sc_init_scale}·g, AGM without "
        f"bias correction, β₁ = {s.beta1}, β₂ = {s.sc_beta2}, ε = {s.sc_eps}, Adam η = {s.sc_adam_learning_rate} "
        f"and AdamE-λ η_λ matched as above, SGD η = {s.sc_sgd_learning_rate}; n ∈ {list(s.sc_ns)}, "
        f"{s.sc_num_datasets} nested data sets × {s.sc_num_seeds} seeds per point, {s.sc_num_steps} steps "
        f"(authors: d = 10⁴, 10⁷ steps); τ = {s.sc_threshold_fraction}·mean‖w*‖² = {record.threshold:.4g}; "
        f"n* = {n_star}. Test loss ‖w − w*‖² is the exact population value (the authors estimate it with 10⁴ "
        "test samples).",
    ]
    return Decision(verdicts, notes)


def plot(settings: AdamESettings, record: AdamERecord) -> dict:
    steps = record.steps
    figure, axes = panels(1, 4, width=3.6, height=3.0)
    ax = axes[0, 3]
    for i, name in enumerate(record.names):
        ax.plot(settings.sc_ns, record.final_test_loss[i].mean(axis=-1), "o-", color=f"C{i}",
                label=name if name != "SGD" else f"SGD (η = {settings.sc_sgd_learning_rate:g})")
    ax.axhline(record.threshold, color="k", ls=":", lw=1, label=f"τ = {record.threshold:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel("number of training samples n")
    ax.set_ylabel("mean final test loss ‖w − w*‖²")
    ax.set_title(f"sample complexity, d = {settings.sc_d}, k = {settings.sc_k}, {settings.sc_num_steps:.1e} steps")
    ax.legend(fontsize=7)
    for i, lam in enumerate(float(lam) for lam in settings.lams):
        color, own = f"C{i}", record.own_measure[i]
        axes[0, 0].plot(steps, own / own[0], color=color, label=f"λ = {lam:g}: " + diag_power_trace_label(f"{1 - lam:g}"))
        axes[0, 1].plot(steps, record.effective_support[i], color=color, label=f"λ = {lam:g}")
        train_and_test(axes[0, 2], steps, record.loss[i], record.test_loss[i], color=color,
                       train_label=f"λ = {lam:g} train", test_label=f"λ = {lam:g} ‖w − w*‖²")
    step_axes(axes[0, :3], ["own measure / its initial value", "effective support ‖w‖₁²/‖w‖₂²",
                        "losses (seed mean)"],
              [diag_power_trace_label("1-\\lambda") + " / value at step 0", "effective number of non-zeros", "loss"])
    figure.suptitle(f"AdamE-λ with label noise δ = {settings.delta}: measures on a diagonal net d = {settings.d}, "
                    f"n = {settings.n}, k = {settings.k} (seed mean of {settings.num_seeds}); sample complexity on "
                    f"the authors' protocol (right)")
    return {"adame": figure}


def tables(settings: AdamESettings, record: AdamERecord) -> dict:
    data = {"step": record.steps}
    for i, lam in enumerate(float(lam) for lam in settings.lams):
        data.update({f"measure_lam{lam:g}": record.own_measure[i],
                     f"effective_support_lam{lam:g}": record.effective_support[i],
                     f"count_above_lam{lam:g}": record.count_above[i], f"loss_lam{lam:g}": record.loss[i],
                     f"test_lam{lam:g}": record.test_loss[i]})
    lams = [float(lam) for lam in settings.lams]
    last = settings.last_records
    retired = {"lam": np.asarray(lams),
               "late_effective_support": record.effective_support[:, -last:].mean(axis=1),
               f"late_count_above_{settings.count_threshold:g}": record.count_above[:, -last:].mean(axis=1),
               "late_test_loss": record.test_loss[:, -last:].mean(axis=1)}
    final = {"n": np.asarray(settings.sc_ns, float),
             **{f"{name}_mean_final_test_loss": record.final_test_loss[i].mean(axis=-1)
                for i, name in enumerate(record.names)}}
    return {"curves": data, "retired_sparsity": retired, "sample_complexity": final}


EXPERIMENT = Experiment(
    id="lwl.adame", paper="LWL", title="AdamE-λ: tr(Diag(H)^{1−λ}) decreases; fewer samples for larger λ",
    tiers=TIERS,
    claims={
        "lwl.adame.measure": ClaimSpec(
            "For every λ, label-noise AdamE-λ decreases tr(Diag(H)^{1−λ}) after the loss "
            "is small (seed mean over the last records < value when the loss first falls below the threshold).",
            "theory", "for every λ: seed mean of tr(Diag(H)^{1−λ}) over the last 5 records < its seed "
            "mean at the first record where the seed-mean loss ≤ 1e-2"),
        "lwl.adame.sample_complexity": ClaimSpec(
            "On sparse regression with a diagonal net and label noise (the authors' protocol at d = 100, "
            "1.5·10⁴ steps instead of d = 10⁴, 10⁷), AdamE-λ needs fewer samples for larger λ and fewer than "
            "SGD: the sample complexity n*(λ) is non-increasing in λ ∈ {0.25, 0.5, 0.75} and below n*(SGD).",
            "paper", "n*(method) = smallest n of the grid whose mean final ‖w − w*‖² over 4 data sets × 2 "
            "seeds is ≤ 0.1 × mean‖w*‖² (∞ if none); held when n*(0.25) ≥ n*(0.5) ≥ n*(0.75) and every "
            "n*(λ) < n*(SGD)"),
    },
    measure=measure, decide=decide, plot=plot, tables=tables,
)
