"""CKS Figure 6: ‖∇E‖₁,ε against the epoch for several β (fixed ρ) and several ρ (fixed β).

The paper (ResNet-101 on CIFAR-10/100, h = 1e−4): the norm falls, rises again (a "hill"),
then falls until it flatlines; throughout most of training the larger β the smaller the norm;
the hills are higher for smaller β and larger ρ (the larger ρ compared to β, the more the bias
term (2.3) keeps ‖∇E‖₁,ε from falling). Here the curves are those of the sweeps of Figures 4
(ρ swept, β fixed) and 5 (β swept, ρ fixed), reused when they ran in the same process
(studies.classifiers memoizes them).

Definitions (studies.statistics): the order at epoch t is Spearman's r between β and the
seed-mean norm over the stable β; "larger β, smaller norm" holds at t when r ≤ −0.8, and the
claim holds when that is so at more than half of the epochs 1…T. The hill height of a run is
max_t S(t)/min_{s≤t} S(s), S the norm smoothed by a ``hill_window``-epoch moving average
(the largest rise above the valley left by the first decrease; 1 = no hill), averaged over
seeds and compared across settings by the same rank criterion.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from adabias.experiments.base import ClaimSpec, Context, Decision, Experiment, Tiers, Verdict
from adabias.plot import panels
from adabias.plot.sweeps import (plot_against_parameter, plot_hill_profiles, plot_norm_curves,
                                 plot_order_by_epoch)
from adabias.studies import classifiers, regimes
from adabias.studies.statistics import (MONOTONE_THRESHOLD, hill_heights, monotone,
                                        rank_correlation_by_column)


@dataclasses.dataclass(frozen=True)
class Fig6Settings:
    # data, model, epochs, seeds, regime criteria and rules (as Figures 4 and 5)
    classifier: classifiers.ClassifierSweepSettings = classifiers.QUICK_SETTINGS
    beta_sweep: classifiers.ParameterSweep = classifiers.QUICK_BETA_SWEEP  # Figure 5's sweep
    rho_sweep: classifiers.ParameterSweep = classifiers.QUICK_RHO_SWEEP  # Figure 4's sweep
    hill_window: int = 11  # epochs of the moving average S
    most_fraction: float = 0.5  # "most of training": more than this fraction of the epochs


FULL = Fig6Settings(classifier=classifiers.FULL_SETTINGS, beta_sweep=classifiers.FULL_BETA_SWEEP,
                    rho_sweep=classifiers.FULL_RHO_SWEEP, hill_window=51, most_fraction=0.5)
TIERS = Tiers(quick=Fig6Settings(), medium=FULL, full=FULL)


class Fig6Record(NamedTuple):
    beta_curves: classifiers.SweepCurves  # β swept at fixed ρ, every epoch
    beta_regimes: np.ndarray  # (values, seeds)
    rho_curves: classifiers.SweepCurves  # ρ swept at fixed β, every epoch
    rho_regimes: np.ndarray  # (values, seeds)
    order: np.ndarray  # (epochs,): Spearman r(β, seed-mean norm) over the stable β at 1…T
    beta_hills: np.ndarray  # (values, seeds): hill heights of the β sweep
    rho_hills: np.ndarray  # (values, seeds): hill heights of the ρ sweep


def measure(settings: Fig6Settings, context: Context) -> Fig6Record:
    common = settings.classifier
    beta_curves = classifiers.classifier_sweep(
        classifiers.sweep_spec(common, settings.beta_sweep), progress=context.progress)
    beta_regimes = regimes.regimes(beta_curves, common.regime)
    rho_curves = classifiers.classifier_sweep(
        classifiers.sweep_spec(common, settings.rho_sweep), progress=context.progress)
    rho_regimes = regimes.regimes(rho_curves, common.regime)
    stable = regimes.stable_values(beta_regimes)
    if stable.sum() >= 3:
        norm = classifiers.seed_mean(beta_curves.norm)[stable]
        order = rank_correlation_by_column(beta_curves.values[stable], norm[:, 1:])
    else:
        order = np.full(beta_curves.norm.shape[-1] - 1, np.nan)
    window = int(settings.hill_window)
    return Fig6Record(beta_curves, beta_regimes, rho_curves, rho_regimes, order,
                      hill_heights(beta_curves.norm, window), hill_heights(rho_curves.norm, window))


class _Summary(NamedTuple):
    beta: np.ndarray  # the stable β
    rho: np.ndarray  # the stable ρ
    fraction: float  # fraction of the epochs 1…T with r(β, norm) ≤ −threshold
    beta_hill: np.ndarray  # seed-mean hill heights at the stable β
    rho_hill: np.ndarray  # seed-mean hill heights at the stable ρ


def _summary(record: Fig6Record) -> _Summary:
    """The stable settings, the ordered fraction of epochs and the seed-mean hill heights."""
    beta_stable = regimes.stable_values(record.beta_regimes)
    rho_stable = regimes.stable_values(record.rho_regimes)
    ordered = np.nan_to_num(record.order, nan=0.0) <= -MONOTONE_THRESHOLD
    return _Summary(record.beta_curves.values[beta_stable], record.rho_curves.values[rho_stable],
                    float(ordered.mean()), classifiers.seed_mean(record.beta_hills)[beta_stable],
                    classifiers.seed_mean(record.rho_hills)[rho_stable])


def _notes(record: Fig6Record) -> tuple[str, str]:
    """The exclusion notes of the β and the ρ sweep."""
    beta = regimes.exclusion_note(record.beta_curves, record.beta_regimes)
    rho = regimes.exclusion_note(record.rho_curves, record.rho_regimes)
    return beta or "β sweep: all stable", rho or "ρ sweep: all stable"


def decide(settings: Fig6Settings, record: Fig6Record) -> Decision:
    window, most = int(settings.hill_window), float(settings.most_fraction)
    beta, rho, fraction, beta_hill, rho_hill = _summary(record)
    order_held = beta.size >= 3 and fraction > most
    median_r = float(np.nanmedian(record.order)) if beta.size >= 3 else None
    hill_beta_held, hill_beta_r = monotone(beta, beta_hill, -1)
    hill_rho_held, hill_rho_r = monotone(rho, rho_hill, +1)
    beta_note, rho_note = _notes(record)
    verdicts = [
        Verdict("cks.fig6.order_beta", order_held,
                {"fraction_of_epochs_ordered": fraction, "required_fraction": most,
                 "beta": beta, "num_epochs": int(record.order.size),
                 "median_spearman_r": median_r}, beta_note),
        Verdict("cks.fig6.hill_beta", hill_beta_held,
                {"spearman_r": hill_beta_r, "beta": beta, "hill_height": beta_hill,
                 "window": window}, beta_note),
        Verdict("cks.fig6.hill_rho", hill_rho_held,
                {"spearman_r": hill_rho_r, "rho": rho, "hill_height": rho_hill,
                 "window": window}, rho_note),
    ]
    common = settings.classifier
    notes = (regimes.setting_notes(common, record.beta_curves)
             + regimes.sweep_notes(common, record.rho_curves)
             + [f"Hill height = max_t S(t)/min_{{s≤t}} S(s), S = {window}-epoch moving average of "
                f"the norm, per run, then the seed mean. Order claim: fraction of epochs 1…T with "
                f"r(β, norm) ≤ −{MONOTONE_THRESHOLD}, held when > {most}. "
                f"{beta_note}; {rho_note}."])
    return Decision(verdicts, notes)


def plot(settings: Fig6Settings, record: Fig6Record) -> dict:
    window = int(settings.hill_window)
    summary = _summary(record)
    figure, axes = panels(2, 3, width=3.6, height=3.0)
    plot_norm_curves(axes[0, 0], record.beta_curves, record.beta_regimes)
    plot_norm_curves(axes[0, 1], record.rho_curves, record.rho_regimes)
    plot_hill_profiles(axes[0, 2], record.beta_curves, window)
    axes[0, 2].set_title(f"hill profile, β sweep (S: {window}-epoch mean)")
    plot_order_by_epoch(axes[1, 0], record.beta_curves, record.order, threshold=MONOTONE_THRESHOLD)
    axes[1, 0].set_title(f"larger β, smaller norm at {summary.fraction:.0%} of epochs")
    plot_against_parameter(axes[1, 1], record.beta_curves, record.beta_hills, record.beta_regimes,
                           "hill height")
    _, hill_beta_r = monotone(summary.beta, summary.beta_hill, -1)
    axes[1, 1].set_title(f"hill height against β (r = {hill_beta_r:.2f})")
    plot_against_parameter(axes[1, 2], record.rho_curves, record.rho_hills, record.rho_regimes,
                           "hill height")
    _, hill_rho_r = monotone(summary.rho, summary.rho_hill, +1)
    axes[1, 2].set_title(f"hill height against ρ (r = {hill_rho_r:.2f})")
    return {"norm_curves": figure}


def tables(settings: Fig6Settings, record: Fig6Record) -> dict:
    beta_curves, rho_curves = record.beta_curves, record.rho_curves
    return {
        "beta_norm_curves": classifiers.curve_table(beta_curves, beta_curves.norm, "norm"),
        "rho_norm_curves": classifiers.curve_table(rho_curves, rho_curves.norm, "norm"),
        "beta_hills": regimes.summary_table(beta_curves, record.beta_regimes,
                                            {"hill_height": record.beta_hills}),
        "rho_hills": regimes.summary_table(rho_curves, record.rho_regimes,
                                           {"hill_height": record.rho_hills}),
        "beta_order": {"epoch": np.arange(1, record.order.size + 1), "spearman_r": record.order},
    }


EXPERIMENT = Experiment(
    id="cks.fig6", paper="CKS",
    title="Figure 6: the perturbed one-norm against the epoch for several β and ρ",
    tiers=TIERS,
    claims={
        "cks.fig6.order_beta": ClaimSpec(
            "Throughout most of training (more than half of the epochs) the "
            "larger β the smaller ‖∇E‖₁,ε at fixed ρ (Spearman r ≤ −0.8 at that epoch).",
            "paper", "Spearman r ≤ −0.8 between β and the seed-mean ‖∇E‖₁,ε at more than half "
            "of the epochs"),
        "cks.fig6.hill_beta": ClaimSpec(
            "The hill of ‖∇E‖₁,ε (max_t S(t)/min_{s≤t} S(s), S smoothed) is "
            "higher for smaller β at fixed ρ (Spearman r ≤ −0.8 over the stable β).",
            "paper", "Spearman r between the swept parameter and the seed mean over the "
            "stable settings, |r| ≥ 0.8 with the stated sign, at least 3 stable settings"),
        "cks.fig6.hill_rho": ClaimSpec(
            "The hill of ‖∇E‖₁,ε is higher for larger ρ at fixed β "
            "(Spearman r ≥ 0.8 over the stable ρ).",
            "paper", "Spearman r between the swept parameter and the seed mean over the "
            "stable settings, |r| ≥ 0.8 with the stated sign, at least 3 stable settings"),
    },
    measure=measure, decide=decide, plot=plot, tables=tables,
)
