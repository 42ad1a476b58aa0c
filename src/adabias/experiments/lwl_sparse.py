"""LWL sparse regression: Adam (AGM form) against SGD with label noise, test loss against n.

The paper's sparse-regression comparison (LWL, DESIGN §3.5): on the manifold of the diagonal
net, label-noise SGD reduces tr(H) ∝ Σ(u_j² + v_j²) ≥ ‖w‖₁ and Adam reduces
tr(Diag(H)^{1/2}) ∝ Σ(|u_j| + |v_j|) ≥ Σ√|w_j|: an ℓ₁ against an ℓ_{1/2} penalty on the
interpolators, so Adam should recover a k-sparse w* from fewer samples.

Sample-complexity curve: for every n of the grid and both optimizers, one label-noise sweep
over seeds, nested data sets padded and stacked (:mod:`adabias.studies.sample_complexity`).

Claim, fixed before running: the sample complexity n*(opt) is the smallest n of the grid at
which the mean final test loss ‖w − w*‖² over all runs (data sets × seeds) is at most
τ = ``threshold_fraction``·mean ‖w*‖² over the data sets (= 0.1·k for unit weights); Adam wins when n*(Adam) < n*(SGD) (n* = ∞ when no
n of the grid reaches τ).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adabias._validation import require_x64
from adabias.experiments.base import ClaimSpec, Context, Decision, Experiment, Tiers, Verdict
from adabias.plot import panels
from adabias.plot.measures import OPTIMIZER_COLORS, mean_with_sem, optimizer_label, runs_as_dots
from adabias.problems.diagonal_net import (
    diagonal_net_loss,
    diagonal_net_test_loss,
    init_diagonal_net,
    sparse_regression_data,
)
from adabias.studies import sample_complexity as study
from adabias.studies.sample_complexity import OPTIMIZERS, LabelNoiseSampleComplexity


@dataclasses.dataclass(frozen=True, kw_only=True)
class SparseSettings(LabelNoiseSampleComplexity):
    """The diagonal net on k-sparse regression, and the shared label-noise training."""

    d: int = 100  # dimension of w
    k: int = 5  # w* = first k coordinates equal to 1
    features: str = "rademacher"  # z ∈ {±1}^d ("gaussian": N(0, I))
    weights: str = "ones"  # w*'s non-zeros: 1 ("uniform": U(−1, 1) with |w*ᵢ| ≥ 1e-2, the authors')
    ns: tuple[int, ...] = (14, 16, 18, 20, 22, 24, 26, 28)
    save_every: int = 1_000
    sgd_learning_rate: float = 0.1  # at 3× this SGD's fluctuation alone kept the test loss near 1
    threshold_fraction: float = 0.1  # τ = threshold_fraction·‖w*‖², fixed before running


#: The authors' protocol (DESIGN §4.4 "LWL") at d = 1000 and 10⁶ steps, sized to run on a 2-core CPU in
#: about 40 minutes (docs/full_runs.md): three n around n = 50, 3 data sets × 2 seeds per point.
MEDIUM = dataclasses.replace(SparseSettings(), d=1000, k=5, weights="uniform", init_scale=0.1,
                             ns=(30, 50, 70), num_datasets=3, num_seeds=2, num_steps=1_000_000,
                             save_every=20_000)
#: The authors' original scale: d = 10⁴, 10⁷ steps (a GPU).
FULL = dataclasses.replace(MEDIUM, d=10_000, ns=(40, 60, 80, 100, 120), num_datasets=8, num_seeds=3,
                           num_steps=10_000_000, save_every=200_000)
TIERS = Tiers(quick=SparseSettings(), medium=MEDIUM, full=FULL)


class SparseRecord(NamedTuple):
    """Per optimizer (OPTIMIZERS order) and n; runs = data sets × seeds."""

    steps: np.ndarray  # (record,)
    threshold: float  # τ
    final_test_loss: np.ndarray  # (optimizer, n, run): ‖w − w*‖² at the last step
    mean_curve: np.ndarray  # (optimizer, n, record): test loss along training, mean over the runs
    final_train_loss: np.ndarray  # (optimizer, n, run): on the n real samples, without noise
    diverged: np.ndarray  # (optimizer, n): sweep members that diverged


def measure(settings: SparseSettings, context: Context) -> SparseRecord:
    require_x64("lwl.sparse")
    d, k, ns = settings.d, settings.k, list(settings.ns)

    def make_data(key):
        return sparse_regression_data(key, max(ns), d, k, features=settings.features, weights=settings.weights)

    data, w_stars = study.stacked_data(make_data, jax.random.key(settings.data_seed), settings.num_datasets)
    init_copy = lambda key: init_diagonal_net(key, d, settings.init_scale)  # noqa: E731
    test_loss = jax.jit(jax.vmap(jax.vmap(jax.vmap(diagonal_net_test_loss, in_axes=(0, 0)),
                                          in_axes=(0, None)), in_axes=(0, None)))
    train_loss = jax.jit(jax.vmap(jax.vmap(diagonal_net_loss, in_axes=(0, 0)), in_axes=(0, None)))
    finals, curves, train_finals, diverged = {}, {}, {}, {}
    for name, n, result in study.sweeps_over_n(settings, diagonal_net_loss, init_copy, data,
                                               track=lambda jobs: context.track(jobs, "lwl.sparse")):
        params = result.trajectory.params  # leaves (seeds, records, copies, d)
        losses = np.asarray(test_loss(params, w_stars))  # (seeds, records, copies)
        finals[name, n] = losses[:, -1, :].ravel()
        curves[name, n] = losses.mean(axis=(0, 2))
        final_params = jax.tree.map(lambda x: x[:, -1], params)
        real = {"z": data["z"][:, :n], "y": data["y"][:, :n]}
        train_finals[name, n] = np.asarray(train_loss(final_params, real)).ravel()
        diverged[name, n] = int(np.sum(np.asarray(result.trajectory.diverged_at) >= 0))
    table = lambda values: np.asarray([[values[name, n] for n in ns] for name in OPTIMIZERS])  # noqa: E731
    return SparseRecord(np.asarray(result.trajectory.steps[0]),
                        settings.threshold_fraction * float(jnp.mean(jnp.sum(w_stars ** 2, axis=-1))), table(finals),
                        table(curves), table(train_finals), table(diverged))


class _Summary(NamedTuple):
    mean: dict  # optimizer -> [mean final test loss per n]
    sem: dict
    recovered: dict  # optimizer -> [fraction of runs ≤ τ per n]


def _summary(record: SparseRecord) -> _Summary:
    stats = study.run_statistics(record.final_test_loss)
    recovered = study.recovered_fraction(record.final_test_loss, record.threshold)
    by_name = lambda table: {name: table[o].tolist() for o, name in enumerate(OPTIMIZERS)}  # noqa: E731
    return _Summary(by_name(stats.mean), by_name(stats.sem), by_name(recovered))


def decide(settings: SparseSettings, record: SparseRecord) -> Decision:
    ns, summary, threshold = list(settings.ns), _summary(record), record.threshold
    n_star = {name: study.sample_complexity(ns, summary.mean[name], threshold) for name in OPTIMIZERS}
    log_area = {name: float(np.trapezoid(np.log10(summary.mean[name]), ns)) for name in OPTIMIZERS}
    runs = settings.num_datasets * settings.num_seeds
    numbers = {
        "n_star_adam": n_star["adam"], "n_star_sgd": n_star["sgd"], "threshold": threshold,
        "ns": ns, "mean_final_test_loss_adam": summary.mean["adam"],
        "mean_final_test_loss_sgd": summary.mean["sgd"],
        "fraction_recovered_adam": summary.recovered["adam"], "fraction_recovered_sgd": summary.recovered["sgd"],
        "area_log10_mean_test_loss_adam": log_area["adam"], "area_log10_mean_test_loss_sgd": log_area["sgd"],
        "runs_per_point": runs,
        "max_mean_final_train_loss": {name: max(float(np.mean(row)) for row in record.final_train_loss[o])
                                      for o, name in enumerate(OPTIMIZERS)},
        "diverged_members": {name: int(record.diverged[o].sum()) for o, name in enumerate(OPTIMIZERS)},
    }
    s = settings
    notes = [
        f"Diagonal net d = {s.d}, w* = first k = {s.k} coordinates "
        f"{'equal to 1' if s.weights == 'ones' else 'U(−1, 1) with |w*ᵢ| ≥ 1e-2'}, {s.features} "
        f"features, label noise δ = {s.delta}, init u = v = {s.init_scale}·N(0, I).",
        f"Adam: AGM with β₁ = {s.beta1}, β₂ = {s.beta2}, ε = {s.eps} "
        f"(the authors' values), η = {s.adam_learning_rate}; SGD: η = "
        f"{s.sgd_learning_rate} (at 3× this SGD's label-noise fluctuation alone kept the "
        "test loss near 1). Both reach a training loss at the noise floor (numbers: "
        "max_mean_final_train_loss) and then drift along the manifold.",
        f"{s.num_steps} steps; every point is {s.num_datasets} nested data sets "
        f"× {s.num_seeds} seeds (initialisation and label noise) = {runs} runs; error "
        "bars are the standard error of the mean, dots the single runs.",
        f"τ = {s.threshold_fraction}·‖w*‖² = {threshold:g}, fixed before running. "
        f"n*(Adam) = {n_star['adam']}, n*(SGD) = {n_star['sgd']}.",
        "SGD's drift speed is η²·δ²/n per step and its η is limited by its fluctuations, so at "
        "short runs SGD may still be moving towards its ℓ₁ limit: the middle panel shows whether "
        "the curves have flattened.",
    ]
    held = n_star["adam"] < n_star["sgd"]
    reason = "" if held else (
        f"n*(Adam) = {n_star['adam']:g} is not below n*(SGD) = {n_star['sgd']:g} on the grid {ns} "
        f"(τ = {threshold:g}; mean final test loss Adam {np.round(summary.mean['adam'], 4).tolist()}, "
        f"SGD {np.round(summary.mean['sgd'], 4).tolist()})")
    return Decision([Verdict("lwl.sparse.sample_complexity", held, numbers, reason)], notes)


def plot(settings: SparseSettings, record: SparseRecord) -> dict:
    ns, summary = list(settings.ns), _summary(record)
    rates = {"adam": settings.adam_learning_rate, "sgd": settings.sgd_learning_rate}
    labels = {name: optimizer_label(name, rates[name]) for name in OPTIMIZERS}
    figure, axes = panels(1, 3, width=3.8, height=3.0)
    ax = axes[0, 0]
    for o, (offset, name) in enumerate(zip((-0.4, 0.4), OPTIMIZERS)):
        color = OPTIMIZER_COLORS[name]
        mean_with_sem(ax, np.asarray(ns) + offset, summary.mean[name], summary.sem[name], color=color,
                      label=labels[name])
        for i, n in enumerate(ns):
            runs_as_dots(ax, n + offset, record.final_test_loss[o, i], color=color)
    ax.axhline(record.threshold, color="k", ls=":", lw=1, label=f"τ = {record.threshold:g}")
    ax.set_yscale("log")
    ax.set_xlabel("number of training samples n")
    ax.set_ylabel("final test loss ‖w − w*‖²")
    ax.set_title("test loss vs n (mean ± s.e.m., dots: runs)")
    ax.legend()
    ax = axes[0, 1]
    middle = len(ns) // 2
    for o, name in enumerate(OPTIMIZERS):
        for i, style in ((middle, "-"), (len(ns) - 1, "--")):
            ax.plot(record.steps, record.mean_curve[o, i], style, color=OPTIMIZER_COLORS[name],
                    label=f"{name.upper() if name == 'sgd' else 'Adam'}, n = {ns[i]}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("mean test loss")
    ax.set_title("test loss during training")
    ax.legend()
    ax = axes[0, 2]
    for name in OPTIMIZERS:
        ax.plot(ns, summary.recovered[name], "o-", color=OPTIMIZER_COLORS[name], label=labels[name])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("number of training samples n")
    ax.set_ylabel("fraction of runs with test loss ≤ τ")
    ax.set_title("recovery rate")
    ax.legend()
    figure.suptitle(f"LWL sparse regression: diagonal net, d = {settings.d}, k = {settings.k}"
                    f"{' (w* entries U(−1, 1))' if settings.weights == 'uniform' else ''}, label noise "
                    f"δ = {settings.delta}, {settings.num_steps:.0e} steps")
    return {"sample_complexity": figure}


def tables(settings: SparseSettings, record: SparseRecord) -> dict:
    ns, summary = list(settings.ns), _summary(record)
    runs = record.final_test_loss.shape[-1]
    return {"final": {"n": np.asarray(ns, float),
                      **{f"{name}_mean_test_loss": np.asarray(summary.mean[name]) for name in OPTIMIZERS},
                      **{f"{name}_sem_test_loss": np.asarray(summary.sem[name]) for name in OPTIMIZERS},
                      **{f"{name}_fraction_recovered": np.asarray(summary.recovered[name]) for name in OPTIMIZERS}},
            "runs": {"n": np.repeat(np.asarray(ns, float), runs),
                     **{f"{name}_final_test_loss": record.final_test_loss[o].ravel()
                        for o, name in enumerate(OPTIMIZERS)}},
            "curves": study.mean_curves_table(record.steps, record.mean_curve, ns, "test_loss")}


EXPERIMENT = Experiment(
    id="lwl.sparse", paper="LWL", title="Sparse regression with a diagonal net: Adam needs fewer samples",
    tiers=TIERS,
    claims={
        "lwl.sparse.sample_complexity": ClaimSpec(
            "With label noise, Adam reaches low test loss at smaller n "
            "than SGD: the smallest n of the grid at which the mean final test loss ‖w − w*‖² "
            "is ≤ 0.1·mean‖w*‖² is smaller for Adam (Adam's ℓ_{1/2}-like bias against SGD's ℓ₁). "
            "Quick: d = 100, 2·10⁴ steps; medium: the authors' protocol at d = 1000, 10⁶ steps "
            "(their original d = 10⁴, 10⁷ steps).",
            "paper", "n*(opt) = smallest n of the grid whose mean final ‖w − w*‖² over all runs "
            "(quick: 4 data sets × 3 seeds; medium: 3 × 2) is ≤ 0.1 × mean‖w*‖² over the data sets "
            "(∞ if none); held when n*(Adam) < n*(SGD)"),
    },
    measure=measure, decide=decide, plot=plot, tables=tables,
)
