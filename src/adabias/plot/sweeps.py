"""Panels of the classifier sweeps (CKS Figures 4–6): quantities against the swept ρ or β,
curves against the epoch, hill profiles and rank correlations along training.

Each function draws on one matplotlib axes a :class:`~adabias.studies.classifiers.SweepCurves`
(values × seeds × epochs) and the regimes of its runs (values × seeds); settings that are not
stable for every seed are drawn in grey or dotted, as excluded from the claims.
"""

from __future__ import annotations

import numpy as np

from adabias.plot import SYMBOLS, panels
from adabias.studies import classifiers
from adabias.studies.classifiers import SweepCurves, seed_mean
from adabias.studies.regimes import stable_values
from adabias.studies.statistics import moving_average, rise_over_running_min

__all__ = ["mark_norm_floor", "plot_against_parameter", "plot_decidability", "plot_flow_order",
           "plot_flow_tracking", "plot_hill_profiles", "plot_loss_curves", "plot_norm_curves",
           "plot_order_by_epoch", "title_figure"]


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


def plot_flow_tracking(ax, comparison, swept: str) -> None:
    """‖∇E‖₁,ε of Adam (markers, at t = n·h) and of its modified flow (2.2)–(2.3) (lines)
    against t for every value of the β (``"beta"``) or ρ (``"rho"``) sweep, each minus the
    flow's mean over the sweep at that time (the settings differ by O(h): this shows them)."""
    values, rows = comparison.sweep(swept)
    name = SYMBOLS[swept]
    centre = comparison.flow_norm[rows].mean(axis=0)
    for i, (value, row) in enumerate(zip(values, rows)):
        ax.plot(comparison.times, comparison.flow_norm[row] - centre, "-", lw=0.9,
                color=f"C{i}", label=f"{name}={value:g} flow")
        ax.plot(comparison.times, comparison.adam_norm[row] - centre, "o", ms=3, color=f"C{i}",
                label=f"{name}={value:g} Adam")
    ax.set_xlabel(r"time $t = n\,h$")
    ax.set_ylabel(r"$\|\nabla E\|_{1,\varepsilon}$ − flow mean over the sweep")
    ax.legend(fontsize=6, ncol=2)


def plot_flow_order(ax, comparison, check, swept: str, k: int = -1) -> None:
    """‖∇E‖₁,ε at the saved time ``k`` against the swept value: the flow (line), Adam
    (markers), the tracking error as error bars on the flow and whether it decides."""
    values, rows = comparison.sweep(swept)
    positions = np.arange(values.size)
    flow, adam = comparison.flow_norm[rows, k], comparison.adam_norm[rows, k]
    ax.errorbar(positions, flow, yerr=check.tracking_error[k], fmt="-", color="C0", capsize=3,
                label="flow (2.2)–(2.3) ± tracking error")
    ax.plot(positions, adam, "o", color="C1", label="Adam at the same t")
    fixed = "rho" if swept == "beta" else "beta"
    value = getattr(comparison.settings, f"{fixed}_fixed")
    ax.set_xticks(positions, [f"{v:g}" for v in values])
    ax.set_xlabel(SYMBOLS[swept] + f" ({SYMBOLS[fixed]} = {value:g})")
    ax.set_ylabel(r"$\|\nabla E\|_{1,\varepsilon}$ at $t$ = " + f"{comparison.times[k]:g}")
    verdict = "decided" if check.decided[k] else "undecided"
    ax.set_title(f"order at t = {comparison.times[k]:g}: {verdict}, "
                 f"{'same' if check.agree[k] else 'different'} order")
    ax.legend(fontsize=7)


def plot_decidability(ax, comparison, checks: dict) -> None:
    """Tracking error over the smallest gap between neighbouring settings against t, per
    sweep; below the dashed line (the decision fraction) the order is decided."""
    for i, (swept, check) in enumerate(checks.items()):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = check.tracking_error / check.smallest_gap
        ax.semilogy(comparison.times[1:], ratio[1:], "o-", ms=3, color=f"C{i}",
                    label=f"{SYMBOLS[swept]} sweep")
    ax.axhline(comparison.settings.error_fraction, color="k", ls="--", lw=0.7,
               label="decision threshold")
    ax.set_xlabel(r"time $t = n\,h$")
    ax.set_ylabel("tracking error / smallest gap")
    ax.legend(fontsize=7)


def title_figure(figure, what: str, data: str, model: str, tier: str) -> None:
    """The figure's title: what it shows, the data set, the model and the scale tier."""
    figure.suptitle(f"{what} — {data}, {model}, {tier} tier", fontsize=10)


def flow_order_figure(comparison, swept: str, what: str, tier: str):
    """The theory panel of CKS Figures 4 and 5: Adam against its flow over the ``swept``
    parameter ("rho" or "beta"), the order at the last time with the tracking error as error
    bars, and the tracking error over the smallest gap along training; titled by ``what``,
    the data, the model and ``tier``."""
    s = comparison.settings
    figure, axes = panels(1, 3, width=3.8, height=3.1)
    plot_flow_tracking(axes[0, 0], comparison, swept)
    axes[0, 0].set_title(f"Adam against its flow, {SYMBOLS[swept]} sweep")
    check = classifiers.order_check(comparison, swept)
    plot_flow_order(axes[0, 1], comparison, check, swept)
    plot_decidability(axes[0, 2], comparison, {swept: check})
    axes[0, 2].set_title("tracking error / smallest gap")
    title_figure(figure, what, classifiers.data_label(s.dataset, s.train_size),
                 classifiers.model_label("mlp", s.widths, s.activation), tier)
    return figure
