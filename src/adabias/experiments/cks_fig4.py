"""CKS Figure 4: full-batch Adam on an image classifier, ρ swept at fixed β.

Backward error analysis (2.3): for ρ > β the bias term keeps the perturbed one-norm
‖∇E‖₁,ε = Σᵢ √((∇ᵢE)² + ε) from falling, the more so the larger ρ. The paper's Figure 4
(ResNet-50, CIFAR-10, β = 0.99, h = 7.5e−5) plots ‖∇E‖₁,ε at epoch 900 and the maximal test
accuracy over 3600+ epochs against ρ, in the stable oscillation regime: the norm rises with ρ,
the accuracy falls. Here: the same measurements on a smaller model (studies.classifiers), the
norm at the same fraction (1/4) of training, both decided by the rank criterion
(studies.statistics) on the stable settings (studies.regimes).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from adabias.experiments.base import ClaimSpec, Context, Decision, Experiment, Tiers, Verdict
from adabias.plot import panels
from adabias.plot.sweeps import mark_norm_floor, plot_against_parameter, plot_loss_curves
from adabias.studies import classifiers, regimes
from adabias.studies.statistics import monotone


@dataclasses.dataclass(frozen=True)
class Fig4Settings:
    # data, model, epochs, seeds, regime criteria and rules; norm_epoch = epochs/4
    classifier: classifiers.ClassifierSweepSettings = classifiers.QUICK_SETTINGS
    sweep: classifiers.ParameterSweep = classifiers.QUICK_RHO_SWEEP  # ρ ≥ β swept at fixed β


FULL = Fig4Settings(classifier=classifiers.FULL_SETTINGS, sweep=classifiers.FULL_RHO_SWEEP)
TIERS = Tiers(quick=Fig4Settings(), medium=FULL, full=FULL)


class Fig4Record(NamedTuple):
    curves: classifiers.SweepCurves  # the ρ sweep, every epoch
    regimes: np.ndarray  # (values, seeds): "stable", "spikes" or "divergence"
    norm_at_epoch: np.ndarray  # (values, seeds): ‖∇E‖₁,ε at norm_epoch
    max_test_accuracy: np.ndarray  # (values, seeds): the best test accuracy over all epochs


def measure(settings: Fig4Settings, context: Context) -> Fig4Record:
    spec = classifiers.sweep_spec(settings.classifier, settings.sweep)
    curves = classifiers.classifier_sweep(spec, progress=context.progress)
    epoch = int(settings.classifier.norm_epoch)
    if not 0 <= epoch <= curves.spec.epochs:
        raise ValueError(f"norm_epoch must lie in [0, epochs={curves.spec.epochs}], got {epoch}")
    return Fig4Record(curves, regimes.regimes(curves, settings.classifier.regime),
                      curves.norm[:, :, epoch], curves.test_accuracy.max(axis=2))


def _note(record: Fig4Record) -> str:
    return regimes.exclusion_note(record.curves, record.regimes) or "no run excluded: all stable"


def decide(settings: Fig4Settings, record: Fig4Record) -> Decision:
    stable = regimes.stable_values(record.regimes)
    rho = record.curves.values[stable]
    norm_mean = classifiers.seed_mean(record.norm_at_epoch)[stable]
    accuracy_mean = classifiers.seed_mean(record.max_test_accuracy)[stable]
    norm_held, norm_r = monotone(rho, norm_mean, +1)
    accuracy_held, accuracy_r = monotone(rho, accuracy_mean, -1)
    epoch, note = int(settings.classifier.norm_epoch), _note(record)
    verdicts = [
        Verdict("cks.fig4.norm", norm_held,
                {"spearman_r": norm_r, "rho": rho, "norm_at_epoch": norm_mean, "epoch": epoch,
                 "num_stable": int(stable.sum())}, note),
        Verdict("cks.fig4.accuracy", accuracy_held,
                {"spearman_r": accuracy_r, "rho": rho, "max_test_accuracy": accuracy_mean,
                 "num_stable": int(stable.sum())}, note),
    ]
    notes = regimes.setting_notes(settings.classifier, record.curves) + [
        f"Norm at epoch {epoch} (1/4 of training, as the paper's 900 of 3600); accuracy = the "
        "maximum of the test accuracy over all epochs. " + note + "."]
    return Decision(verdicts, notes)


def plot(settings: Fig4Settings, record: Fig4Record) -> dict:
    curves, epoch = record.curves, int(settings.classifier.norm_epoch)
    figure, axes = panels(1, 3, width=3.6, height=3.0)
    plot_against_parameter(axes[0, 0], curves, record.norm_at_epoch, record.regimes,
                           f"‖∇E‖₁,ε at epoch {epoch}", log=True)
    mark_norm_floor(axes[0, 0], curves)
    axes[0, 0].set_title(f"perturbed one-norm at epoch {epoch}")
    plot_against_parameter(axes[0, 1], curves, record.max_test_accuracy, record.regimes,
                           "maximal test accuracy")
    axes[0, 1].set_title(f"best test accuracy over {curves.spec.epochs} epochs")
    plot_loss_curves(axes[0, 2], curves, record.regimes)
    axes[0, 2].axvline(epoch, color="k", lw=0.6, ls="--")
    axes[0, 2].set_title("train loss (regime in legend)")
    return {"rho_sweep": figure}


def tables(settings: Fig4Settings, record: Fig4Record) -> dict:
    return regimes.sweep_tables("rho_sweep", record.curves, record.regimes, settings.classifier.regime,
                                {"norm_at_epoch": record.norm_at_epoch,
                                 "max_test_accuracy": record.max_test_accuracy})


EXPERIMENT = Experiment(
    id="cks.fig4", paper="CKS",
    title="Figure 4: perturbed one-norm and test accuracy against ρ (full-batch Adam, images)",
    tiers=TIERS,
    claims={
        "cks.fig4.norm": ClaimSpec(
            "In the stable oscillation regime ‖∇E‖₁,ε at a fixed epoch (1/4 of "
            "training) rises with ρ at fixed β (Spearman r ≥ 0.8 over the stable ρ).",
            "paper", "Spearman r between the swept parameter and the seed mean over the "
            "stable settings, |r| ≥ 0.8 with the stated sign, at least 3 stable settings"),
        "cks.fig4.accuracy": ClaimSpec(
            "In the stable oscillation regime the maximal test accuracy falls "
            "as ρ rises at fixed β (Spearman r ≤ −0.8 over the stable ρ).",
            "paper", "Spearman r between the swept parameter and the seed mean over the "
            "stable settings, |r| ≥ 0.8 with the stated sign, at least 3 stable settings"),
    },
    measure=measure, decide=decide, plot=plot, tables=tables,
)
