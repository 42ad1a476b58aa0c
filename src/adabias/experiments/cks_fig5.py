"""CKS Figure 5: full-batch Adam on an image classifier, β swept at fixed ρ.

Backward error analysis (2.3): the coefficient (1+β)/(1−β) − (1+ρ)/(1−ρ) grows with β, so
the larger β the more ‖∇E‖₁,ε is penalized (or the less it is kept from falling). The paper's
Figure 5 (ResNet-50, CIFAR-10, ρ = 0.999, h = 1e−4) measures ‖∇E‖₁,ε and the test accuracy
when the train loss first drops below 0.1: the norm falls with β, the accuracy rises. Here:
the same measurement on a smaller model (studies.classifiers), decided by the rank criterion
(studies.statistics) on the stable settings (studies.regimes) that reach the threshold.
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
class Fig5Settings:
    # data, model, epochs, seeds, regime criteria and rules; loss_threshold = 0.1 (the paper's)
    classifier: classifiers.ClassifierSweepSettings = classifiers.QUICK_SETTINGS
    sweep: classifiers.ParameterSweep = classifiers.QUICK_BETA_SWEEP  # β < ρ swept at fixed ρ


FULL = Fig5Settings(classifier=classifiers.FULL_SETTINGS, sweep=classifiers.FULL_BETA_SWEEP)
TIERS = Tiers(quick=Fig5Settings(), medium=FULL, full=FULL)


class Fig5Record(NamedTuple):
    curves: classifiers.SweepCurves  # the β sweep, every epoch
    regimes: np.ndarray  # (values, seeds): "stable", "spikes" or "divergence"
    crossing_epoch: np.ndarray  # (values, seeds): first epoch with loss < threshold (−1: never)
    norm_at_crossing: np.ndarray  # (values, seeds): ‖∇E‖₁,ε there (NaN: never)
    test_accuracy_at_crossing: np.ndarray  # (values, seeds): test accuracy there (NaN: never)


def measure(settings: Fig5Settings, context: Context) -> Fig5Record:
    spec = classifiers.sweep_spec(settings.classifier, settings.sweep)
    curves = classifiers.classifier_sweep(spec, progress=context.progress)
    threshold = float(settings.classifier.loss_threshold)
    crossing, norm_at = regimes.at_crossing(curves.loss, curves.norm, threshold)
    _, accuracy_at = regimes.at_crossing(curves.loss, curves.test_accuracy, threshold)
    return Fig5Record(curves, regimes.regimes(curves, settings.classifier.regime), crossing,
                      norm_at, accuracy_at)


class _Used(NamedTuple):
    stable: np.ndarray  # (values,): every seed stable
    reached: np.ndarray  # (values,): every seed reached the threshold
    note: str  # which settings were excluded and why


def _used(settings: Fig5Settings, record: Fig5Record) -> _Used:
    threshold = float(settings.classifier.loss_threshold)
    stable = regimes.stable_values(record.regimes)
    reached = np.all(record.crossing_epoch >= 0, axis=1)
    excluded = [regimes.exclusion_note(record.curves, record.regimes)]
    never = [f"β={v:g}" for v, ok, st in zip(record.curves.values, reached, stable)
             if st and not ok]
    if never:
        excluded.append(f"excluded (a seed never reached loss {threshold:g}): {', '.join(never)}")
    note = "; ".join(e for e in excluded if e) or "no run excluded: all stable and all crossed"
    return _Used(stable, reached, note)


def decide(settings: Fig5Settings, record: Fig5Record) -> Decision:
    threshold = float(settings.classifier.loss_threshold)
    stable, reached, note = _used(settings, record)
    used = stable & reached
    beta = record.curves.values[used]
    norm_mean = classifiers.seed_mean(record.norm_at_crossing)[used]
    accuracy_mean = classifiers.seed_mean(record.test_accuracy_at_crossing)[used]
    norm_held, norm_r = monotone(beta, norm_mean, -1)
    accuracy_held, accuracy_r = monotone(beta, accuracy_mean, +1)
    numbers = {"beta": beta, "crossing_epoch": classifiers.seed_mean(record.crossing_epoch)[used],
               "threshold": threshold, "num_used": int(used.sum())}
    verdicts = [
        Verdict("cks.fig5.norm", norm_held,
                {"spearman_r": norm_r, "norm_at_crossing": norm_mean, **numbers}, note),
        Verdict("cks.fig5.accuracy", accuracy_held,
                {"spearman_r": accuracy_r, "test_accuracy_at_crossing": accuracy_mean,
                 **numbers}, note),
    ]
    notes = regimes.setting_notes(settings.classifier, record.curves) + [
        f"Both quantities at the first epoch with train loss < {threshold:g} (as the paper). "
        + note + "."]
    return Decision(verdicts, notes)


def plot(settings: Fig5Settings, record: Fig5Record) -> dict:
    curves, threshold = record.curves, float(settings.classifier.loss_threshold)
    figure, axes = panels(1, 3, width=3.6, height=3.0)
    plot_against_parameter(axes[0, 0], curves, record.norm_at_crossing, record.regimes,
                           f"‖∇E‖₁,ε when loss < {threshold:g}", log=True)
    mark_norm_floor(axes[0, 0], curves)
    axes[0, 0].set_title(f"perturbed one-norm at loss < {threshold:g}")
    plot_against_parameter(axes[0, 1], curves, record.test_accuracy_at_crossing, record.regimes,
                           f"test accuracy when loss < {threshold:g}")
    axes[0, 1].set_title(f"test accuracy at loss < {threshold:g}")
    if not np.all(record.crossing_epoch >= 0, axis=1).any():  # no setting reached it
        for ax in axes[0, :2]:
            ax.text(0.5, 0.5, f"no run reached loss < {threshold:g}", transform=ax.transAxes,
                    ha="center", va="center")
    plot_loss_curves(axes[0, 2], curves, record.regimes)
    axes[0, 2].axhline(threshold, color="k", lw=0.6, ls="--")
    axes[0, 2].set_title("train loss (regime in legend)")
    return {"beta_sweep": figure}


def tables(settings: Fig5Settings, record: Fig5Record) -> dict:
    return regimes.sweep_tables("beta_sweep", record.curves, record.regimes, settings.classifier.regime,
                                {"crossing_epoch": record.crossing_epoch,
                                 "norm_at_crossing": record.norm_at_crossing,
                                 "test_accuracy_at_crossing": record.test_accuracy_at_crossing})


EXPERIMENT = Experiment(
    id="cks.fig5", paper="CKS",
    title="Figure 5: perturbed one-norm and test accuracy against β (full-batch Adam, images)",
    tiers=TIERS,
    claims={
        "cks.fig5.norm": ClaimSpec(
            "In the stable oscillation regime ‖∇E‖₁,ε when the train loss first "
            "drops below the threshold falls as β rises at fixed ρ (Spearman r ≤ −0.8 over the "
            "stable β).",
            "paper", "Spearman r between the swept parameter and the seed mean over the "
            "stable settings, |r| ≥ 0.8 with the stated sign, at least 3 stable settings"),
        "cks.fig5.accuracy": ClaimSpec(
            "In the stable oscillation regime the test accuracy when the train "
            "loss first drops below the threshold rises with β at fixed ρ (Spearman r ≥ 0.8 "
            "over the stable β).",
            "paper", "Spearman r between the swept parameter and the seed mean over the "
            "stable settings, |r| ≥ 0.8 with the stated sign, at least 3 stable settings"),
    },
    measure=measure, decide=decide, plot=plot, tables=tables,
)
