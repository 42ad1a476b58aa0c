"""CKS Figure 6: ‖∇E‖₁,ε against the epoch for several β (fixed ρ) and several ρ (fixed β).

The paper (ResNet-101, h = 1e−4, ε = 1e−8; CIFAR-10 with ρ = 0.999 and β swept, CIFAR-100
with β = 0.97 and ρ swept): the norm falls, rises again (a "hill"), then falls until it
flatlines; throughout most of training the larger β the smaller the norm; the hills are
higher for smaller β and larger ρ (the larger ρ compared to β, the more the bias term (2.3)
keeps ‖∇E‖₁,ε from falling).

Two kinds of claim (DESIGN §4.2):
- theory (every tier): along training, at every saved time t = n·h where Adam's tracking
  error is at most a third of the gaps between settings, Adam and its flow (2.2)–(2.3)
  both order the norm the paper's way: falling with β, rising with ρ (the flow comparison of
  studies.classifiers, shared with Figures 4 and 5);
- paper (medium and full): over paired seeds, the norm is smaller at the largest β than at
  the smallest at more than half of the epochs; the hill height max_t S(t)/min_{s≤t} S(s)
  (S the norm smoothed over ``hill_window`` epochs, studies.statistics) is lower at the
  largest β and higher at the largest ρ. The β sweep is Figure 5's (reused from the memo);
  the ρ sweep is at β = 0.97 (CIFAR-10 where CIFAR-100 is absent). The quick tier does not
  test them (DESIGN §4.3): its small networks show no hill, and the EMA time scales of the
  paper's β, ρ (100–10⁴ epochs) exceed its runs.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import numpy as np

from adabias.experiments.base import ClaimSpec, Context, Decision, Experiment, Tiers, Verdict
from adabias.plot import panels
from adabias.plot.sweeps import (plot_against_parameter, plot_decidability, plot_flow_tracking,
                                 plot_hill_profiles, plot_norm_curves, title_figure)
from adabias.studies import classifiers, regimes
from adabias.studies.statistics import hill_heights, paired_test


@dataclasses.dataclass(frozen=True)
class Fig6Settings:
    # the theory claim: Adam and its flow from one start (studies.classifiers)
    flow: classifiers.FlowComparisonSettings = classifiers.FlowComparisonSettings()
    min_decided_fraction: float = 0.5  # the theory claim needs this fraction of times decided
    # the paper claims (None: not tested at this tier)
    classifier: Optional[classifiers.ClassifierSweepSettings] = None
    beta_sweep: Optional[classifiers.ParameterSweep] = None  # Figure 5's sweep
    rho_sweep: Optional[classifiers.ParameterSweep] = None  # ρ swept at β = 0.97
    hill_window: int = 51  # epochs of the moving average S
    most_fraction: float = 0.5  # "most of training": more than this fraction of the epochs


MEDIUM = Fig6Settings(classifier=classifiers.MEDIUM_SETTINGS,
                      beta_sweep=classifiers.MEDIUM_BETA_SWEEP,
                      rho_sweep=classifiers.MEDIUM_RHO_SWEEP_FIG6)
FULL = Fig6Settings(classifier=classifiers.FULL_SETTINGS, beta_sweep=classifiers.FULL_BETA_SWEEP,
                    rho_sweep=classifiers.FULL_RHO_SWEEP_FIG6)
TIERS = Tiers(quick=Fig6Settings(), medium=MEDIUM, full=FULL)


class Fig6Record(NamedTuple):
    comparison: classifiers.FlowComparison  # Adam and its flow, β and ρ sweeps
    beta_curves: Optional[classifiers.SweepCurves] = None  # β swept at fixed ρ, every epoch
    beta_regimes: Optional[np.ndarray] = None  # (values, seeds)
    rho_curves: Optional[classifiers.SweepCurves] = None  # ρ swept at fixed β, every epoch
    rho_regimes: Optional[np.ndarray] = None  # (values, seeds)
    ordered_fraction: Optional[np.ndarray] = None  # (seeds,): epochs 1…T with norm(β_max) < norm(β_min)
    beta_hills: Optional[np.ndarray] = None  # (values, seeds): hill heights of the β sweep
    rho_hills: Optional[np.ndarray] = None  # (values, seeds): hill heights of the ρ sweep


def measure(settings: Fig6Settings, context: Context) -> Fig6Record:
    comparison = classifiers.flow_comparison(settings.flow)
    if settings.classifier is None or settings.beta_sweep is None or settings.rho_sweep is None:
        return Fig6Record(comparison)
    common = settings.classifier
    beta_curves = classifiers.classifier_sweep(
        classifiers.sweep_spec(common, settings.beta_sweep), progress=context.progress)
    rho_curves = classifiers.classifier_sweep(
        classifiers.sweep_spec(common, settings.rho_sweep), progress=context.progress)
    order = np.argsort(beta_curves.values)
    low, high = beta_curves.norm[order[0], :, 1:], beta_curves.norm[order[-1], :, 1:]
    window = int(settings.hill_window)
    return Fig6Record(comparison, beta_curves, regimes.regimes(beta_curves, common.regime),
                      rho_curves, regimes.regimes(rho_curves, common.regime),
                      np.mean(high < low, axis=1), hill_heights(beta_curves.norm, window),
                      hill_heights(rho_curves.norm, window))


class _TheoryOrder(NamedTuple):
    decided: dict  # sweep -> (times,) decided
    paper_way: dict  # sweep -> (times,) Adam and flow both strictly monotone the paper's way


def _theory_order(comparison: classifiers.FlowComparison) -> _TheoryOrder:
    decided, paper_way = {}, {}
    for swept, sign in (("beta", -1), ("rho", +1)):
        check = classifiers.order_check(comparison, swept)
        decided[swept] = check.decided[1:]
        paper_way[swept] = (np.nan_to_num(sign * check.flow_r[1:]) == 1) & (
            np.nan_to_num(sign * check.adam_r[1:]) == 1)
    return _TheoryOrder(decided, paper_way)


def _theory_verdict(settings: Fig6Settings, comparison: classifiers.FlowComparison) -> Verdict:
    order = _theory_order(comparison)
    need = float(settings.min_decided_fraction)
    numbers: dict = {}
    for swept in ("beta", "rho"):
        decided, ok = order.decided[swept], order.paper_way[swept]
        numbers[f"{swept}_decided_fraction"] = float(decided.mean())
        numbers[f"{swept}_paper_way_at_decided"] = int(np.sum(ok & decided))
    numbers["saved_times"] = int(order.decided["beta"].size)
    numbers["required_decided_fraction"] = need
    numbers["times"] = comparison.times[1:]
    for swept in ("beta", "rho"):
        numbers[f"{swept}_paper_way"] = order.paper_way[swept].astype(int)
        numbers[f"{swept}_decided"] = order.decided[swept].astype(int)
    wrong = {s: int(np.sum(order.decided[s] & ~order.paper_way[s])) for s in ("beta", "rho")}
    if any(wrong.values()):
        return Verdict("cks.fig6.flow_order", False, numbers,
                       "contradicted: at decided times the order is not the paper's way "
                       f"(β sweep: {wrong['beta']} times, ρ sweep: {wrong['rho']} times)")
    short = [s for s in ("beta", "rho") if order.decided[s].mean() < need]
    if short:
        return Verdict("cks.fig6.flow_order", False, numbers,
                       "undecided: the tracking error exceeds a third of the gaps at too many "
                       "saved times (" + ", ".join(
                           f"{s} sweep decided at {order.decided[s].mean():.0%}" for s in short)
                       + f", {need:.0%} required)")
    return Verdict("cks.fig6.flow_order", True, numbers)


def _tier(settings: Fig6Settings) -> str:
    for name in ("quick", "medium", "full"):
        if TIERS.at(name) == settings:
            return name
    return "custom"


def decide(settings: Fig6Settings, record: Fig6Record) -> Decision:
    verdicts = [_theory_verdict(settings, record.comparison)]
    notes = classifiers.flow_notes(record.comparison) + [
        "Theory claim: at each saved time and in each sweep, decided where the tracking error "
        "≤ 1/3 × the smallest neighbouring gap; 'the paper's way' = Spearman r = −1 over β and "
        "+1 over ρ for both Adam and the flow. The flow has no hill at this scale: its norm "
        "falls monotonically over the compared times (Figure 6's hills are a paper claim)."]
    if record.beta_curves is None:
        reason = ("undecided: not tested at this tier — the quick networks show no hill and "
                  "the EMA time scales of the paper's β, ρ (100–10⁴ epochs) exceed quick runs "
                  "(DESIGN §4.3); run --scale medium")
        verdicts += [Verdict(c, False, {}, reason) for c in
                     ("cks.fig6.order_beta", "cks.fig6.hill_beta", "cks.fig6.hill_rho")]
        return Decision(verdicts, notes)
    most = float(settings.most_fraction)
    stable = regimes.stable_values(record.beta_regimes)
    order = np.argsort(record.beta_curves.values)
    if stable[order[0]] and stable[order[-1]]:
        test = paired_test(np.full(record.ordered_fraction.shape, most), record.ordered_fraction,
                           +1)
        numbers = {"mean_ordered_fraction_over_required": test.mean_difference,
                   "min_detectable_effect": test.min_detectable, "p_value": test.p_value,
                   "ordered_fraction_per_seed": record.ordered_fraction,
                   "required_fraction": most, **test.numbers()}
        order_verdict = Verdict("cks.fig6.order_beta", test.held, numbers, test.reason())
    else:
        order_verdict = Verdict("cks.fig6.order_beta", False,
                                {"ordered_fraction_per_seed": record.ordered_fraction},
                                "undecided: the smallest or the largest β is not stable for "
                                "every seed")
    hill_beta = regimes.extremes_test(record.beta_curves, record.beta_regimes, record.beta_hills,
                                      -1)
    hill_rho = regimes.extremes_test(record.rho_curves, record.rho_regimes, record.rho_hills, +1)
    window = int(settings.hill_window)
    verdicts += [
        order_verdict,
        Verdict("cks.fig6.hill_beta", hill_beta.held,
                {**hill_beta.numbers("hill_height"), "window": window}, hill_beta.note()),
        Verdict("cks.fig6.hill_rho", hill_rho.held,
                {**hill_rho.numbers("hill_height"), "window": window}, hill_rho.note()),
    ]
    common = settings.classifier
    notes += (regimes.setting_notes(common, record.beta_curves)
              + regimes.sweep_notes(common, record.rho_curves)
              + [f"Paper claims: per seed, the fraction of epochs 1…T with ‖∇E‖₁,ε smaller at "
                 f"the largest β than at the smallest, sign test that it exceeds {most}; hill "
                 f"height = max_t S(t)/min_{{s≤t}} S(s), S the {window}-epoch moving average "
                 "of the norm, per run, largest against smallest value, sign test over the "
                 "paired seeds. The ρ sweep uses CIFAR-10 (the paper: CIFAR-100)."])
    return Decision(verdicts, notes)


def plot(settings: Fig6Settings, record: Fig6Record) -> dict:
    comparison, tier = record.comparison, _tier(settings)
    s = comparison.settings
    figure, axes = panels(1, 3, width=3.8, height=3.1)
    plot_flow_tracking(axes[0, 0], comparison, "beta")
    axes[0, 0].set_title(f"β sweep (ρ = {s.rho_fixed:g})")
    plot_flow_tracking(axes[0, 1], comparison, "rho")
    axes[0, 1].set_title(f"ρ sweep (β = {s.beta_fixed:g})")
    checks = {swept: classifiers.order_check(comparison, swept) for swept in ("beta", "rho")}
    plot_decidability(axes[0, 2], comparison, checks)
    axes[0, 2].set_title("tracking error / smallest gap")
    title_figure(figure, "Figure 6 theory: ‖∇E‖₁,ε along training, Adam and flow (2.2)–(2.3)",
                 classifiers.data_label(s.dataset, s.train_size),
                 classifiers.model_label("mlp", s.widths, s.activation), tier)
    figures = {"flow_curves": figure}
    if record.beta_curves is None:
        return figures
    window = int(settings.hill_window)
    figure, axes = panels(2, 3, width=3.8, height=3.1)
    plot_norm_curves(axes[0, 0], record.beta_curves, record.beta_regimes)
    plot_norm_curves(axes[0, 1], record.rho_curves, record.rho_regimes)
    plot_hill_profiles(axes[0, 2], record.beta_curves, window)
    axes[0, 2].set_title(f"hill profile, β sweep (S: {window}-epoch mean)")
    plot_hill_profiles(axes[1, 0], record.rho_curves, window)
    axes[1, 0].set_title(f"hill profile, ρ sweep (S: {window}-epoch mean)")
    plot_against_parameter(axes[1, 1], record.beta_curves, record.beta_hills, record.beta_regimes,
                           "hill height")
    axes[1, 1].set_title("hill height against β")
    plot_against_parameter(axes[1, 2], record.rho_curves, record.rho_hills, record.rho_regimes,
                           "hill height")
    axes[1, 2].set_title("hill height against ρ")
    spec = record.beta_curves.spec
    title_figure(figure, "Figure 6: ‖∇E‖₁,ε against the epoch",
                 classifiers.data_label(spec.dataset, spec.train_size, spec.downsample),
                 classifiers.model_label(spec.model, spec.widths), tier)
    figures["norm_curves"] = figure
    return figures


def tables(settings: Fig6Settings, record: Fig6Record) -> dict:
    out = {"flow_beta": classifiers.flow_table(record.comparison, "beta"),
           "flow_rho": classifiers.flow_table(record.comparison, "rho")}
    if record.beta_curves is None:
        return out
    beta_curves, rho_curves = record.beta_curves, record.rho_curves
    out.update({
        "beta_norm_curves": classifiers.curve_table(beta_curves, beta_curves.norm, "norm"),
        "rho_norm_curves": classifiers.curve_table(rho_curves, rho_curves.norm, "norm"),
        "beta_hills": regimes.summary_table(beta_curves, record.beta_regimes,
                                            {"hill_height": record.beta_hills}),
        "rho_hills": regimes.summary_table(rho_curves, record.rho_regimes,
                                           {"hill_height": record.rho_hills}),
        "beta_ordered_fraction": {"seed": np.arange(record.ordered_fraction.size),
                                  "ordered_fraction": record.ordered_fraction},
    })
    return out


_PAIRED = ("exact one-sided sign test over the paired seeds (same initializations) between "
           "the smallest and the largest swept value, α = 0.01, both stable for every seed; "
           "numbers: the smallest effect detectable with 80 % power from the measured spread")

EXPERIMENT = Experiment(
    id="cks.fig6", paper="CKS",
    title="Figure 6: the perturbed one-norm against the epoch for several β and ρ",
    tiers=TIERS,
    claims={
        "cks.fig6.flow_order": ClaimSpec(
            "Along training, at matched times t = n·h, full-batch Adam and its modified flow "
            "(2.2)–(2.3) both order ‖∇E‖₁,ε the paper's way: smaller for larger β (ρ fixed), "
            "larger for larger ρ (β fixed).",
            "theory", "at each saved time and sweep, decided when max |Adam − flow| ≤ 1/3 × "
            "the smallest gap between the flow's values at neighbouring settings; held when "
            "at every decided time Spearman r = −1 over β and +1 over ρ for Adam and the flow, "
            "and at least half of the saved times are decided in each sweep"),
        "cks.fig6.order_beta": ClaimSpec(
            "Throughout most of training (more than half of the epochs) ‖∇E‖₁,ε is smaller at "
            "the largest β than at the smallest, ρ fixed.",
            "paper", "per seed the fraction of epochs 1…T with norm(β_max) < norm(β_min); "
            "exact one-sided sign test over the paired seeds that it exceeds 1/2, α = 0.01"),
        "cks.fig6.hill_beta": ClaimSpec(
            "The hill of ‖∇E‖₁,ε (max_t S(t)/min_{s≤t} S(s), S smoothed) is higher at the "
            "smallest β than at the largest, ρ fixed.",
            "paper", _PAIRED),
        "cks.fig6.hill_rho": ClaimSpec(
            "The hill of ‖∇E‖₁,ε is higher at the largest ρ than at the smallest, β fixed.",
            "paper", _PAIRED),
    },
    measure=measure, decide=decide, plot=plot, tables=tables,
    shares="studies.classifiers",  # the flow comparison and the sweeps, computed once
)
