"""CKS Figure 5: full-batch Adam on an image classifier, β swept at fixed ρ.

Backward error analysis (2.3): the coefficient (1+β)/(1−β) − (1+ρ)/(1−ρ) grows with β, so
the larger β the more ‖∇E‖₁,ε is penalized (or the less it is kept from falling). The paper's
Figure 5 (ResNet-50, CIFAR-10, ρ = 0.999, h = 1e−4) measures ‖∇E‖₁,ε and the test accuracy
when the train loss first drops below 0.1: the norm falls with β, the accuracy rises. Here:
the same measurement on a smaller model (image_sweeps), decided by the rank criterion of
image_sweeps on the stable settings that reach the threshold.
"""

from __future__ import annotations

import numpy as np

from adabias.experiments import image_sweeps as sweeps
from adabias.experiments.base import Context, Result, experiment, make_claim
from adabias.experiments.plotting import panels
from adabias.studies.curves import first_index_below

QUICK = {**sweeps.QUICK_BASE, "sweep": sweeps.QUICK_BETA_SWEEP}  # loss_threshold: 0.1
FULL = {**sweeps.FULL_BASE, "sweep": sweeps.FULL_BETA_SWEEP}


def at_crossing(loss: np.ndarray, quantity: np.ndarray, threshold: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """(epoch, quantity there) where each run's loss first drops below ``threshold``.

    ``loss`` and ``quantity`` have shape (values, seeds, epochs + 1); runs that never cross
    get epoch −1 and NaN.
    """
    epochs = np.full(loss.shape[:2], -1, dtype=np.int64)
    values = np.full(loss.shape[:2], np.nan)
    for index in np.ndindex(epochs.shape):
        epoch = first_index_below(loss[index], threshold)
        if epoch >= 0:
            epochs[index], values[index] = epoch, quantity[index][epoch]
    return epochs, values


@experiment(
    id="cks.fig5", paper="CKS",
    title="Figure 5: perturbed one-norm and test accuracy against β (full-batch Adam, images)",
    quick=QUICK, full=FULL,
    claims={
        "cks.fig5.norm": "In the stable oscillation regime ‖∇E‖₁,ε when the train loss first "
            "drops below the threshold falls as β rises at fixed ρ (Spearman r ≤ −0.8 over the "
            "stable β).",
        "cks.fig5.accuracy": "In the stable oscillation regime the test accuracy when the train "
            "loss first drops below the threshold rises with β at fixed ρ (Spearman r ≥ 0.8 "
            "over the stable β).",
    },
)
def run(settings: dict, context: Context) -> Result:
    curves, run_regimes = sweeps.run_sweep(settings, settings["sweep"], context.progress)
    threshold = float(settings["loss_threshold"])
    crossing, norm_at = at_crossing(curves.loss, curves.norm, threshold)
    _, accuracy_at = at_crossing(curves.loss, curves.test_accuracy, threshold)
    stable = sweeps.stable_values(run_regimes)
    reached = np.all(crossing >= 0, axis=1)
    used = stable & reached
    beta = curves.values[used]
    norm_mean = sweeps.seed_mean(norm_at)[used]
    accuracy_mean = sweeps.seed_mean(accuracy_at)[used]
    norm_held, norm_r = sweeps.monotone(beta, norm_mean, -1)
    accuracy_held, accuracy_r = sweeps.monotone(beta, accuracy_mean, +1)
    excluded = [sweeps.exclusion_note(curves, run_regimes)]
    never = [f"β={v:g}" for v, ok, st in zip(curves.values, reached, stable) if st and not ok]
    if never:
        excluded.append(f"excluded (a seed never reached loss {threshold:g}): {', '.join(never)}")
    note = "; ".join(e for e in excluded if e) or "no run excluded: all stable and all crossed"

    figure, axes = panels(1, 3, width=3.6, height=3.0)
    sweeps.plot_against_parameter(axes[0, 0], curves, norm_at, run_regimes,
                                  f"‖∇E‖₁,ε when loss < {threshold:g}", log=True,
                                  floor=curves.norm_floor)
    axes[0, 0].set_title(f"perturbed one-norm at loss < {threshold:g}")
    sweeps.plot_against_parameter(axes[0, 1], curves, accuracy_at, run_regimes,
                                  f"test accuracy when loss < {threshold:g}")
    axes[0, 1].set_title(f"test accuracy at loss < {threshold:g}")
    if not reached.any():
        for ax in axes[0, :2]:
            ax.text(0.5, 0.5, f"no run reached loss < {threshold:g}", transform=ax.transAxes,
                    ha="center", va="center")
    sweeps.plot_loss_curves(axes[0, 2], curves, run_regimes)
    axes[0, 2].axhline(threshold, color="k", lw=0.6, ls="--")
    axes[0, 2].set_title("train loss (regime in legend)")

    exp = run_entry
    numbers = {"beta": beta, "crossing_epoch": sweeps.seed_mean(crossing)[used],
               "threshold": threshold, "num_used": int(used.sum())}
    claims = [
        make_claim(exp, "cks.fig5.norm", norm_held,
                   {"spearman_r": norm_r, "norm_at_crossing": norm_mean, **numbers},
                   settings, note=note),
        make_claim(exp, "cks.fig5.accuracy", accuracy_held,
                   {"spearman_r": accuracy_r, "test_accuracy_at_crossing": accuracy_mean,
                    **numbers}, settings, note=note),
    ]
    table = sweeps.summary_table(curves, run_regimes, {
        "crossing_epoch": crossing, "norm_at_crossing": norm_at,
        "test_accuracy_at_crossing": accuracy_at, "final_loss": curves.loss[:, :, -1],
        "oscillation_fraction": sweeps.oscillation_table(curves, settings["regime"])})
    notes = sweeps.setting_notes(settings, curves) + [
        f"Both quantities at the first epoch with train loss < {threshold:g} (as the paper). "
        + note + "."]
    return Result(figures={"beta_sweep": figure},
                  data={"beta_sweep": table,
                        "norm_curves": sweeps.curve_table(curves, curves.norm, "norm")},
                  claims=claims, notes=notes)


run_entry = run
