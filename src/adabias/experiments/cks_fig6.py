"""CKS Figure 6: ‖∇E‖₁,ε against the epoch for several β (fixed ρ) and several ρ (fixed β).

The paper (ResNet-101 on CIFAR-10/100, h = 1e−4): the norm falls, rises again (a "hill"),
then falls until it flatlines; throughout most of training the larger β the smaller the norm;
the hills are higher for smaller β and larger ρ (the larger ρ compared to β, the more the bias
term (2.3) keeps ‖∇E‖₁,ε from falling). Here the curves are those of the sweeps of Figures 4
(ρ swept, β fixed) and 5 (β swept, ρ fixed), reused when they ran in the same process.

Definitions (image_sweeps): the order at epoch t is Spearman's r between β and the seed-mean
norm over the stable β; "larger β, smaller norm" holds at t when r ≤ −0.8, and the claim holds
when that is so at more than half of the epochs 1…T. The hill height of a run is
max_t S(t)/min_{s≤t} S(s), S the norm smoothed by a ``hill_window``-epoch moving average
(the largest rise above the valley left by the first decrease; 1 = no hill), averaged over
seeds and compared across settings by the same rank criterion.
"""

from __future__ import annotations

import numpy as np

from adabias.experiments import image_sweeps as sweeps
from adabias.experiments.base import Context, Result, experiment, make_claim
from adabias.experiments.plotting import panels

QUICK = {**sweeps.QUICK_BASE, "beta_sweep": sweeps.QUICK_BETA_SWEEP,
         "rho_sweep": sweeps.QUICK_RHO_SWEEP, "hill_window": 11, "most_fraction": 0.5}
FULL = {**sweeps.FULL_BASE, "beta_sweep": sweeps.FULL_BETA_SWEEP,
        "rho_sweep": sweeps.FULL_RHO_SWEEP, "hill_window": 51, "most_fraction": 0.5}


def order_by_epoch(values: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Spearman r between ``values`` (n,) and ``curves[:, t]`` (n, T) for every epoch t."""
    return np.array([sweeps.rank_correlation(values, curves[:, t]) for t in range(curves.shape[1])])


def hill_heights(norm: np.ndarray, window: int) -> np.ndarray:
    """Hill height of every run of ``norm`` (values, seeds, epochs + 1) → (values, seeds)."""
    out = np.empty(norm.shape[:2])
    for index in np.ndindex(out.shape):
        out[index] = sweeps.hill_height(norm[index], window)
    return out


def _plot_curves(ax, curves: sweeps.SweepCurves, run_regimes: np.ndarray) -> None:
    stable = sweeps.stable_values(run_regimes)
    name = sweeps.SYMBOL[curves.spec.swept]
    for i, (value, row) in enumerate(zip(curves.values, sweeps.seed_mean(curves.norm))):
        label = f"{name}={value:g}" + ("" if stable[i] else " (excluded)")
        ax.semilogy(curves.epochs, row, lw=0.9, color=f"C{i}", ls="-" if stable[i] else ":",
                    label=label)
    ax.axhline(curves.norm_floor, color="k", lw=0.7, ls="--", label="p·√ε (zero gradient)")
    ax.set_xlabel("epoch (= full-batch step)")
    ax.set_ylabel("‖∇E‖₁,ε (seed mean)")
    ax.set_title(f"{name} swept, {sweeps.SYMBOL[curves.spec.fixed_name]} = {curves.spec.fixed:g}")
    ax.legend()


@experiment(
    id="cks.fig6", paper="CKS",
    title="Figure 6: the perturbed one-norm against the epoch for several β and ρ",
    quick=QUICK, full=FULL,
    claims={
        "cks.fig6.order_beta": "Throughout most of training (more than half of the epochs) the "
            "larger β the smaller ‖∇E‖₁,ε at fixed ρ (Spearman r ≤ −0.8 at that epoch).",
        "cks.fig6.hill_beta": "The hill of ‖∇E‖₁,ε (max_t S(t)/min_{s≤t} S(s), S smoothed) is "
            "higher for smaller β at fixed ρ (Spearman r ≤ −0.8 over the stable β).",
        "cks.fig6.hill_rho": "The hill of ‖∇E‖₁,ε is higher for larger ρ at fixed β "
            "(Spearman r ≥ 0.8 over the stable ρ).",
    },
)
def run(settings: dict, context: Context) -> Result:
    beta_curves, beta_regimes = sweeps.run_sweep(settings, settings["beta_sweep"], context.progress)
    rho_curves, rho_regimes = sweeps.run_sweep(settings, settings["rho_sweep"], context.progress)
    window = int(settings["hill_window"])
    most = float(settings["most_fraction"])

    beta_stable = sweeps.stable_values(beta_regimes)
    rho_stable = sweeps.stable_values(rho_regimes)
    beta = beta_curves.values[beta_stable]
    rho = rho_curves.values[rho_stable]
    beta_norm = sweeps.seed_mean(beta_curves.norm)[beta_stable]
    r_by_epoch = order_by_epoch(beta, beta_norm)[1:] if beta.size >= 3 else np.full(
        beta_curves.norm.shape[-1] - 1, np.nan)
    ordered = np.nan_to_num(r_by_epoch, nan=0.0) <= -sweeps.MONOTONE_THRESHOLD
    fraction = float(ordered.mean())
    order_held = beta.size >= 3 and fraction > most

    beta_hills = hill_heights(beta_curves.norm, window)
    rho_hills = hill_heights(rho_curves.norm, window)
    beta_hill_mean = sweeps.seed_mean(beta_hills)[beta_stable]
    rho_hill_mean = sweeps.seed_mean(rho_hills)[rho_stable]
    hill_beta_held, hill_beta_r = sweeps.monotone(beta, beta_hill_mean, -1)
    hill_rho_held, hill_rho_r = sweeps.monotone(rho, rho_hill_mean, +1)
    beta_note = sweeps.exclusion_note(beta_curves, beta_regimes) or "β sweep: all stable"
    rho_note = sweeps.exclusion_note(rho_curves, rho_regimes) or "ρ sweep: all stable"

    figure, axes = panels(2, 3, width=3.6, height=3.0)
    _plot_curves(axes[0, 0], beta_curves, beta_regimes)
    _plot_curves(axes[0, 1], rho_curves, rho_regimes)
    for i, value in enumerate(beta_curves.values):
        smooth = sweeps.moving_average(beta_curves.norm[i, 0], window)
        axes[0, 2].plot(np.arange(smooth.size) + window // 2, smooth / np.minimum.accumulate(smooth),
                        lw=0.9, color=f"C{i}", label=f"β={value:g}")
    axes[0, 2].set_xlabel("epoch")
    axes[0, 2].set_ylabel("S(t) / min_{s≤t} S(s)  (seed 0)")
    axes[0, 2].set_title(f"hill profile, β sweep (S: {window}-epoch mean)")
    axes[0, 2].legend()
    axes[1, 0].plot(np.arange(1, r_by_epoch.size + 1), r_by_epoch, lw=0.8, color="C0",
                    label="Spearman r(β, norm)")
    axes[1, 0].axhline(-sweeps.MONOTONE_THRESHOLD, color="k", ls="--", lw=0.7, label="−0.8")
    axes[1, 0].set_xlabel("epoch")
    axes[1, 0].set_ylabel("rank correlation over stable β")
    axes[1, 0].set_title(f"larger β, smaller norm at {fraction:.0%} of epochs")
    axes[1, 0].set_ylim(-1.05, 1.05)
    axes[1, 0].legend()
    sweeps.plot_against_parameter(axes[1, 1], beta_curves, beta_hills, beta_regimes, "hill height")
    axes[1, 1].set_title(f"hill height against β (r = {hill_beta_r:.2f})")
    sweeps.plot_against_parameter(axes[1, 2], rho_curves, rho_hills, rho_regimes, "hill height")
    axes[1, 2].set_title(f"hill height against ρ (r = {hill_rho_r:.2f})")

    exp = run_entry
    claims = [
        make_claim(exp, "cks.fig6.order_beta", order_held,
                   {"fraction_of_epochs_ordered": fraction, "required_fraction": most,
                    "beta": beta, "num_epochs": int(r_by_epoch.size),
                    "median_spearman_r": float(np.nanmedian(r_by_epoch)) if beta.size >= 3 else None},
                   settings, note=beta_note),
        make_claim(exp, "cks.fig6.hill_beta", hill_beta_held,
                   {"spearman_r": hill_beta_r, "beta": beta, "hill_height": beta_hill_mean,
                    "window": window}, settings, note=beta_note),
        make_claim(exp, "cks.fig6.hill_rho", hill_rho_held,
                   {"spearman_r": hill_rho_r, "rho": rho, "hill_height": rho_hill_mean,
                    "window": window}, settings, note=rho_note),
    ]
    data = {
        "beta_norm_curves": sweeps.curve_table(beta_curves, beta_curves.norm, "norm"),
        "rho_norm_curves": sweeps.curve_table(rho_curves, rho_curves.norm, "norm"),
        "beta_hills": sweeps.summary_table(beta_curves, beta_regimes, {"hill_height": beta_hills}),
        "rho_hills": sweeps.summary_table(rho_curves, rho_regimes, {"hill_height": rho_hills}),
        "beta_order": {"epoch": np.arange(1, r_by_epoch.size + 1), "spearman_r": r_by_epoch},
    }
    rho_lines = sweeps.sweep_notes(settings, rho_curves)
    notes = (sweeps.setting_notes(settings, beta_curves) + rho_lines
             + [f"Hill height = max_t S(t)/min_{{s≤t}} S(s), S = {window}-epoch moving average of "
                f"the norm, per run, then the seed mean. Order claim: fraction of epochs 1…T with "
                f"r(β, norm) ≤ −{sweeps.MONOTONE_THRESHOLD}, held when > {most}. "
                f"{beta_note}; {rho_note}."])
    return Result(figures={"norm_curves": figure}, data=data, claims=claims, notes=notes)


run_entry = run
