"""CKS Figure 4: full-batch Adam on an image classifier, ρ swept at fixed β.

Backward error analysis (2.3): for ρ > β the bias term keeps the perturbed one-norm
‖∇E‖₁,ε = Σᵢ √((∇ᵢE)² + ε) from falling, the more so the larger ρ. The paper's Figure 4
(ResNet-50, CIFAR-10, β = 0.99, h = 7.5e−5) plots ‖∇E‖₁,ε at epoch 900 and the maximal test
accuracy over 3600+ epochs against ρ, in the stable oscillation regime: the norm rises with ρ,
the accuracy falls. Here: the same measurements on a smaller model (image_sweeps), the norm
at the same fraction (1/4) of training, both decided by the rank criterion of image_sweeps on
the stable settings.
"""

from __future__ import annotations

from adabias.experiments import image_sweeps as sweeps
from adabias.experiments.base import Context, Result, experiment, make_claim
from adabias.experiments.plotting import panels

QUICK = {**sweeps.QUICK_BASE, "sweep": sweeps.QUICK_RHO_SWEEP}  # norm_epoch: epochs/4
FULL = {**sweeps.FULL_BASE, "sweep": sweeps.FULL_RHO_SWEEP}


@experiment(
    id="cks.fig4", paper="CKS",
    title="Figure 4: perturbed one-norm and test accuracy against ρ (full-batch Adam, images)",
    quick=QUICK, full=FULL,
    claims={
        "cks.fig4.norm": "In the stable oscillation regime ‖∇E‖₁,ε at a fixed epoch (1/4 of "
            "training) rises with ρ at fixed β (Spearman r ≥ 0.8 over the stable ρ).",
        "cks.fig4.accuracy": "In the stable oscillation regime the maximal test accuracy falls "
            "as ρ rises at fixed β (Spearman r ≤ −0.8 over the stable ρ).",
    },
)
def run(settings: dict, context: Context) -> Result:
    curves, run_regimes = sweeps.run_sweep(settings, settings["sweep"], context.progress)
    epoch = int(settings["norm_epoch"])
    if not 0 <= epoch <= curves.spec.epochs:
        raise ValueError(f"norm_epoch must lie in [0, epochs={curves.spec.epochs}], got {epoch}")
    norm_at = curves.norm[:, :, epoch]
    best_accuracy = curves.test_accuracy.max(axis=2)
    stable = sweeps.stable_values(run_regimes)
    rho = curves.values[stable]
    norm_mean = sweeps.seed_mean(norm_at)[stable]
    accuracy_mean = sweeps.seed_mean(best_accuracy)[stable]
    norm_held, norm_r = sweeps.monotone(rho, norm_mean, +1)
    accuracy_held, accuracy_r = sweeps.monotone(rho, accuracy_mean, -1)
    note = sweeps.exclusion_note(curves, run_regimes) or "no run excluded: all stable"

    figure, axes = panels(1, 3, width=3.6, height=3.0)
    sweeps.plot_against_parameter(axes[0, 0], curves, norm_at, run_regimes,
                                  f"‖∇E‖₁,ε at epoch {epoch}", log=True,
                                  floor=curves.norm_floor)
    axes[0, 0].set_title(f"perturbed one-norm at epoch {epoch}")
    sweeps.plot_against_parameter(axes[0, 1], curves, best_accuracy, run_regimes,
                                  "maximal test accuracy")
    axes[0, 1].set_title(f"best test accuracy over {curves.spec.epochs} epochs")
    sweeps.plot_loss_curves(axes[0, 2], curves, run_regimes)
    axes[0, 2].axvline(epoch, color="k", lw=0.6, ls="--")
    axes[0, 2].set_title("train loss (regime in legend)")

    exp = run_entry
    claims = [
        make_claim(exp, "cks.fig4.norm", norm_held,
                   {"spearman_r": norm_r, "rho": rho, "norm_at_epoch": norm_mean,
                    "epoch": epoch, "num_stable": int(stable.sum())}, settings, note=note),
        make_claim(exp, "cks.fig4.accuracy", accuracy_held,
                   {"spearman_r": accuracy_r, "rho": rho, "max_test_accuracy": accuracy_mean,
                    "num_stable": int(stable.sum())}, settings, note=note),
    ]
    table = sweeps.summary_table(curves, run_regimes, {
        "norm_at_epoch": norm_at, "max_test_accuracy": best_accuracy,
        "final_loss": curves.loss[:, :, -1],
        "oscillation_fraction": sweeps.oscillation_table(curves, settings["regime"])})
    notes = sweeps.setting_notes(settings, curves) + [
        f"Norm at epoch {epoch} (1/4 of training, as the paper's 900 of 3600); accuracy = the "
        "maximum of the test accuracy over all epochs. " + note + "."]
    return Result(figures={"rho_sweep": figure},
                  data={"rho_sweep": table,
                        "norm_curves": sweeps.curve_table(curves, curves.norm, "norm")},
                  claims=claims, notes=notes)


run_entry = run
