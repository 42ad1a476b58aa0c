"""Panels of the classifier sweeps (CKS Figures 4–6): quantities against the swept ρ or β,
curves against the epoch, hill profiles and rank correlations along training.

Each function draws on one matplotlib axes a :class:`~adabias.studies.classifiers.SweepCurves`
(values × seeds × epochs) and the regimes of its runs (values × seeds); settings that are not
stable for every seed are drawn in grey or dotted, as excluded from the claims.
"""

from __future__ import annotations

import numpy as np

from adabias.plot import SYMBOLS
from adabias.studies.classifiers import SweepCurves, seed_mean
from adabias.studies.regimes import stable_values
from adabias.studies.statistics import moving_average, rise_over_running_min

__all__ = ["mark_norm_floor", "plot_against_parameter", "plot_hill_profiles", "plot_loss_curves",
           "plot_norm_curves", "plot_order_by_epoch"]


def _parameter_label(curves: SweepCurves) -> str:
    """E.g. "ρ (β = 0.9)": the swept parameter and the value of the fixed one."""
    spec = curves.spec
    return SYMBOLS[spec.swept] + f" ({SYMBOLS[spec.fixed_name]} = {spec.fixed:g})"


def plot_against_parameter(ax, curves: SweepCurves, per_run: np.ndarray, run_regimes: np.ndarray,
                           ylabel: str, *, log: bool = False) -> None:
    """Per-seed values (dots) and the seed mean of stable settings (line) against the swept
    parameter (evenly spaced ticks at its values); excluded settings in grey crosses."""
    positions = np.arange(curves.values.size)
    stable = stable_values(run_regimes)
    for s in range(per_run.shape[1]):
        ax.plot(positions[stable], per_run[stable, s], "o", ms=3, alpha=0.5, color="C0",
                label="one seed" if s == 0 else None)
    if np.any(stable):
        ax.plot(positions[stable], np.nanmean(per_run[stable], axis=1), "-", color="C0",
                label="seed mean (stable)")
    if np.any(~stable):
        excluded = per_run[~stable]
        for s in range(excluded.shape[1]):
            ax.plot(positions[~stable], excluded[:, s], "x", color="0.5",
                    label="spikes/divergence (excluded)" if s == 0 else None)
    ax.set_xticks(positions, [f"{v:g}" for v in curves.values])
    ax.set_xlabel(_parameter_label(curves))
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend()


def mark_norm_floor(ax, curves: SweepCurves) -> None:
    """A dashed line at p·√ε, the value of ‖∇E‖₁,ε at a zero gradient (legend redrawn)."""
    ax.axhline(curves.norm_floor, color="k", lw=0.7, ls="--", label="p·√ε (zero gradient)")
    ax.legend()


def plot_loss_curves(ax, curves: SweepCurves, run_regimes: np.ndarray) -> None:
    """Train loss against epoch for every setting (seed 0), regime in the legend."""
    for i, value in enumerate(curves.values):
        regime = run_regimes[i, 0]
        ax.semilogy(curves.epochs, curves.loss[i, 0], lw=0.8, color=f"C{i}",
                    ls="-" if regime == "stable" else ":",
                    label=f"{SYMBOLS[curves.spec.swept]}={value:g} ({regime})")
    ax.set_xlabel("epoch (= full-batch step)")
    ax.set_ylabel("train loss E (seed 0)")
    ax.legend(fontsize=6)


def plot_norm_curves(ax, curves: SweepCurves, run_regimes: np.ndarray) -> None:
    """Seed-mean ‖∇E‖₁,ε against epoch for every setting, and the floor p·√ε."""
    stable = stable_values(run_regimes)
    name = SYMBOLS[curves.spec.swept]
    for i, (value, row) in enumerate(zip(curves.values, seed_mean(curves.norm))):
        label = f"{name}={value:g}" + ("" if stable[i] else " (excluded)")
        ax.semilogy(curves.epochs, row, lw=0.9, color=f"C{i}", ls="-" if stable[i] else ":",
                    label=label)
    ax.set_xlabel("epoch (= full-batch step)")
    ax.set_ylabel("‖∇E‖₁,ε (seed mean)")
    ax.set_title(f"{name} swept, {SYMBOLS[curves.spec.fixed_name]} = {curves.spec.fixed:g}")
    mark_norm_floor(ax, curves)


def plot_hill_profiles(ax, curves: SweepCurves, window: int) -> None:
    """S(t)/min_{s≤t} S(s) of seed 0 for every setting, S the ``window``-epoch moving average
    of ‖∇E‖₁,ε (placed at the window's centre); its maximum is the hill height."""
    name = SYMBOLS[curves.spec.swept]
    for i, value in enumerate(curves.values):
        smooth = moving_average(curves.norm[i, 0], window)
        ax.plot(np.arange(smooth.size) + window // 2, rise_over_running_min(smooth),
                lw=0.9, color=f"C{i}", label=f"{name}={value:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(r"$S(t)\,/\,\min_{s\leq t} S(s)$  (seed 0)")
    ax.legend()


def plot_order_by_epoch(ax, curves: SweepCurves, r_by_epoch: np.ndarray, *, threshold: float
                        ) -> None:
    """Spearman r between the swept parameter and the seed-mean norm at epochs 1…T, and the
    level −``threshold`` below which "larger parameter, smaller norm" holds at an epoch."""
    name = SYMBOLS[curves.spec.swept]
    ax.plot(np.arange(1, r_by_epoch.size + 1), r_by_epoch, lw=0.8, color="C0",
            label=f"Spearman r({name}, norm)")
    ax.axhline(-threshold, color="k", ls="--", lw=0.7, label=f"−{threshold:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"rank correlation over stable {name}")
    ax.set_ylim(-1.05, 1.05)
    ax.legend()
