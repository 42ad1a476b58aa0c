"""Regimes of the classifier sweeps of CKS Figures 4–6: the classifier, the rules, the notes.

Regimes (in the spirit of Ma et al. 2022, CKS §6): a run is
- *divergence* when the engine marked it (non-finite loss/gradient/parameters) or its loss
  ever exceeded ``blowup_factor`` × its initial loss;
- *spikes* when, after the first ``initial_fraction`` of the epochs, its train loss rose
  above ``spike_factor`` × its running minimum;
- *stable* (small oscillations) otherwise.
Claims are decided on the stable settings only (a setting is stable when all its seeds are).

The statements of Figures 4–6 concern Adam where its modified flow (2.2)–(2.3) applies and
training is still under way. :class:`~adabias.studies.classifiers.RegimeRules` states that
regime as thresholds (every EMA time scale 1/(1−β), 1/(1−ρ) at most a tenth of the epochs;
loss 0.1 first reached after two time scales and within half of the epochs; ‖∇E‖₁,ε where
Figure 4 measures at least 5·p·√ε), the quick settings were chosen by them, and
:func:`rule_checks` reports them for every run.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Optional

import numpy as np

from adabias.studies.symbols import SYMBOLS
from adabias.studies.classifiers import (ClassifierSweepSettings, RegimeCriteria, RegimeRules,
                                         SweepCurves, SweepSpec, curve_table, seed_mean)
from adabias.studies.curves import first_index_below
from adabias.studies.statistics import PairedTest, paired_test, seeds_needed

REGIMES = ("stable", "spikes", "divergence")


def classify_regime(loss: np.ndarray, diverged_at: int, *, initial_fraction: float,
                    spike_factor: float, blowup_factor: float) -> str:
    """``"divergence"``, ``"spikes"`` or ``"stable"`` for one loss curve (module docstring)."""
    loss = np.asarray(loss, dtype=np.float64)
    if diverged_at >= 0 or not np.all(np.isfinite(loss)) or np.max(loss) > blowup_factor * loss[0]:
        return "divergence"
    running_min = np.minimum.accumulate(loss)
    after = int(np.ceil(initial_fraction * (loss.size - 1)))
    if np.any(loss[after:] > spike_factor * running_min[after:]):
        return "spikes"
    return "stable"


def oscillation_fraction(loss: np.ndarray, initial_fraction: float) -> float:
    """Fraction of the epochs after the initial phase at which the loss increased."""
    loss = np.asarray(loss, dtype=np.float64)
    after = int(np.ceil(initial_fraction * (loss.size - 1)))
    return float(np.mean(np.diff(loss)[after:] > 0)) if loss.size - 1 > after else 0.0


def regimes(curves: SweepCurves, criteria: RegimeCriteria) -> np.ndarray:
    """The regime of every run, shape (values, seeds)."""
    out = np.empty(curves.diverged_at.shape, dtype=object)
    for index in np.ndindex(out.shape):
        out[index] = classify_regime(
            curves.loss[index], int(curves.diverged_at[index]),
            initial_fraction=criteria.initial_fraction, spike_factor=criteria.spike_factor,
            blowup_factor=criteria.blowup_factor)
    return out


def stable_values(run_regimes: np.ndarray) -> np.ndarray:
    """Mask over the swept values: all seeds of the value are stable."""
    return np.all(run_regimes == "stable", axis=1)


def exclusion_note(curves: SweepCurves, run_regimes: np.ndarray) -> str:
    """Which settings were excluded from the claims and why ("" when none)."""
    parts = []
    name = SYMBOLS[curves.spec.swept]
    for value, row in zip(curves.values, run_regimes):
        bad = [f"seed {s}: {r}" for s, r in enumerate(row) if r != "stable"]
        if bad:
            parts.append(f"{name}={value:g} ({', '.join(bad)})")
    return ("excluded (not all seeds in the stable regime): " + "; ".join(parts)) if parts else ""


def oscillation_table(curves: SweepCurves, criteria: RegimeCriteria) -> np.ndarray:
    """``oscillation_fraction`` of every run, shape (values, seeds)."""
    out = np.empty(curves.diverged_at.shape)
    for index in np.ndindex(out.shape):
        out[index] = oscillation_fraction(curves.loss[index], criteria.initial_fraction)
    return out


def summary_table(curves: SweepCurves, run_regimes: np.ndarray, columns: Mapping[str, np.ndarray]
                  ) -> dict:
    """One row per run: swept value, seed, regime, and ``columns`` (each (values, seeds))."""
    values, seeds = np.meshgrid(curves.values, np.arange(run_regimes.shape[1]), indexing="ij")
    table = {curves.spec.swept: values.ravel(), "seed": seeds.ravel(),
             "stable": (run_regimes == "stable").ravel().astype(int),
             "regime_code": np.vectorize(REGIMES.index)(run_regimes).ravel()}
    table.update({name: np.asarray(col, dtype=np.float64).ravel() for name, col in columns.items()})
    return table


def sweep_tables(name: str, curves: SweepCurves, run_regimes: np.ndarray,
                 criteria: RegimeCriteria, columns: Mapping[str, np.ndarray]) -> dict:
    """The two data tables of a Figure 4/5 sweep: ``name`` — one row per run with ``columns``,
    the final loss and the oscillation fraction (:func:`summary_table`) — and ``norm_curves``,
    the seed-mean ‖∇E‖₁,ε against the epoch."""
    return {
        name: summary_table(curves, run_regimes, {
            **columns, "final_loss": curves.loss[:, :, -1],
            "oscillation_fraction": oscillation_table(curves, criteria)}),
        "norm_curves": curve_table(curves, curves.norm, "norm"),
    }


def first_crossings(loss: np.ndarray, threshold: float) -> np.ndarray:
    """The first epoch at which each run's loss (values, seeds, epochs + 1) is below
    ``threshold``, shape (values, seeds); −1 for a run that never gets there."""
    epochs = np.full(loss.shape[:2], -1, dtype=np.int64)
    for index in np.ndindex(epochs.shape):
        epochs[index] = first_index_below(loss[index], threshold)
    return epochs


def at_crossing(loss: np.ndarray, quantity: np.ndarray, threshold: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """(epoch, quantity there) where each run's loss first drops below ``threshold``.

    ``loss`` and ``quantity`` have shape (values, seeds, epochs + 1); runs that never cross
    get epoch −1 and NaN.
    """
    epochs = first_crossings(loss, threshold)
    values = np.full(loss.shape[:2], np.nan)
    for index in np.ndindex(epochs.shape):
        if epochs[index] >= 0:
            values[index] = quantity[index][epochs[index]]
    return epochs, values


# --- the regime rules ---------------------------------------------------------------------


def max_timescale(spec: SweepSpec) -> float:
    """τ_max = the largest EMA time scale 1/(1−β), 1/(1−ρ) of the sweep, in epochs."""
    return float(max(1.0 / (1.0 - v) for v in (*spec.values, spec.fixed)))


class RuleCheck(NamedTuple):
    """The regime rules evaluated on a sweep; per-value arrays have shape (values,)."""

    timescale: float  # τ_max
    timescale_met: bool  # R1: τ_max ≤ timescale_fraction · epochs
    crossing: np.ndarray  # seed-mean first epoch with loss < threshold (NaN: a seed never crossed)
    crossing_met: np.ndarray  # R3: crossing_after_timescales·τ_max ≤ crossing ≤ crossing_by_fraction·epochs
    norm_over_floor: np.ndarray  # seed-mean ‖∇E‖₁,ε at norm_epoch over p·√ε
    norm_met: np.ndarray  # R3: norm_over_floor ≥ norm_over_floor rule


def rule_checks(curves: SweepCurves, rules: RegimeRules, norm_epoch: int, threshold: float
                ) -> RuleCheck:
    """Whether every run of ``curves`` lies in the regime that ``rules`` describe."""
    if not 0 <= norm_epoch <= curves.spec.epochs:
        raise ValueError(f"norm_epoch must lie in [0, epochs={curves.spec.epochs}], got {norm_epoch}")
    tau = max_timescale(curves.spec)
    epochs = curves.spec.epochs
    first = first_crossings(curves.loss, threshold)
    crossing = np.where(np.all(first >= 0, axis=1), first.mean(axis=1), np.nan)
    with np.errstate(invalid="ignore"):
        crossing_met = ((crossing >= rules.crossing_after_timescales * tau)
                        & (crossing <= rules.crossing_by_fraction * epochs))
    over = seed_mean(curves.norm[:, :, norm_epoch]) / curves.norm_floor
    return RuleCheck(tau, bool(tau <= rules.timescale_fraction * epochs), crossing,
                     crossing_met, over, over >= rules.norm_over_floor)


# --- report lines -------------------------------------------------------------------------


def _met(mask: np.ndarray, values: np.ndarray, name: str) -> str:
    missed = [f"{name}={v:g}" for v, ok in zip(values, mask) if not ok]
    return "met by every setting" if not missed else "NOT met by " + ", ".join(missed)


def sweep_notes(settings: ClassifierSweepSettings, curves: SweepCurves) -> list[str]:
    """Report lines of one sweep: values, time, oscillation, and the regime rules checked."""
    spec = curves.spec
    rules = settings.rules
    name = SYMBOLS[spec.swept]
    epoch, threshold = int(settings.norm_epoch), float(settings.loss_threshold)
    check = rule_checks(curves, rules, epoch, threshold)
    crossing = ", ".join(f"{name}={v:g}: " + ("never" if np.isnan(c) else f"{c:.0f}")
                         for v, c in zip(curves.values, check.crossing))
    over = ", ".join(f"{name}={v:g}: {x:.1f}" for v, x in zip(curves.values, check.norm_over_floor))
    return [
        f"Sweep {name} ∈ {list(spec.values)} ({SYMBOLS[spec.fixed_name]} = "
        f"{spec.fixed:g}): one vmapped program, {curves.seconds:.1f} s of training (compile "
        "included; a figure that finds the sweep already trained in this process reuses it). "
        f"Fraction of epochs (after the initial phase) at which the loss increased, seed mean: "
        + ", ".join(f"{name}={v:g}: {f:.2f}" for v, f in
                    zip(curves.values, seed_mean(oscillation_table(curves, settings.regime))))
        + f". p = {curves.num_params} parameters, so ‖∇E‖₁,ε ≥ p·√ε = {curves.norm_floor:.3g}.",
        f"Regime rules, {name} sweep. R1: largest EMA time scale max 1/(1−β), 1/(1−ρ) = "
        f"{check.timescale:.0f} epochs against {rules.timescale_fraction:g} × {spec.epochs} "
        f"epochs: {'met' if check.timescale_met else 'NOT met'} (before it the bias corrections "
        "1/(1−βⁿ), 1/(1−ρⁿ) still act and the modified flow (2.2)–(2.3) does not yet describe "
        f"the iterates). R3: first epoch with train loss < {threshold:g} (seed mean) {crossing}; "
        f"required in [{rules.crossing_after_timescales:g}·τ_max, "
        f"{rules.crossing_by_fraction:g}·epochs] = "
        f"[{rules.crossing_after_timescales * check.timescale:.0f}, "
        f"{rules.crossing_by_fraction * spec.epochs:.0f}]: "
        f"{_met(check.crossing_met, curves.values, name)}. ‖∇E‖₁,ε at epoch {epoch} over p·√ε "
        f"(seed mean) {over}; required ≥ {rules.norm_over_floor:g}: "
        f"{_met(check.norm_met, curves.values, name)}.",
    ]


def setting_notes(settings: ClassifierSweepSettings, curves: SweepCurves) -> list[str]:
    """Report lines: data, model, optimizer, regime criteria, how the quick settings were
    chosen, and the lines of ``curves``' sweep (``sweep_notes``)."""
    spec = curves.spec
    data = ("scikit-learn digits, stratified 75/25 split, pixels standardized"
            if spec.dataset == "digits" else
            f"CIFAR-10 (root {spec.data_root or 'default: $ADABIAS_DATA or ~/.cache/adabias'}), "
            f"first {spec.train_size or 'all'} train / {spec.test_size or 'all'} test images, "
            "channels standardized, no augmentation"
            + (f", {spec.downsample}×{spec.downsample} average pooling" if spec.downsample > 1
               else ""))
    regime = settings.regime
    return [
        f"Data: {data}. Model: {spec.model} {list(spec.widths)}, {spec.dtype} "
        f"(‖∇E‖₁,ε evaluated in float64). Full-batch Adam (Def. 2.1, ε = {spec.eps:g} inside "
        f"the root), h = {spec.learning_rate:g}, {spec.epochs} epochs, {spec.num_seeds} "
        f"seed(s) (initializations) per setting.",
        f"Regimes: divergence = engine-marked non-finite or loss > {regime.blowup_factor:g}× "
        f"its initial value; spikes = after the first {regime.initial_fraction:.0%} of the "
        f"epochs the loss rises above {regime.spike_factor:g}× its running minimum; stable "
        "otherwise. Paper claims compare settings whose seeds are all stable.",
    ] + ([
        "How the quick settings were chosen (rules fixed before the sweeps ran): R1 every EMA "
        "time scale 1/(1−β), 1/(1−ρ) ≤ epochs/10, so ρ ≤ 0.99 and 1000 epochs; R2 the paper's "
        "sign pattern: ρ ≥ β swept at fixed β (Figure 4), β < ρ swept at fixed ρ (Figure 5), "
        "both sweeps through (β, ρ) = (0.9, 0.99); R3 training still under way where the "
        "figures measure: loss 0.1 first reached between 2·τ_max and half of the epochs, "
        "‖∇E‖₁,ε at epochs/4 at least 5·p·√ε; R4 the largest h in {1e-3, 3e-3, 1e-2, 3e-2} "
        "(the bias term is first order in h) at which one run at (0.9, 0.99) meets R3 without "
        "spikes, then the widest hidden layer in {32, 16, 8} at that h. The full settings keep "
        "the paper's β, ρ. Caveat behind R1 and R3: with the paper's β, ρ (0.99…0.9999) over a "
        "few hundred epochs the runs are still in the bias-correction start-up (time scales up "
        "to 10⁴ epochs), and a network that fits digits within ~100 epochs leaves the norm on "
        "its floor p·√ε for most of training and crosses loss 0.1 during the first descent, "
        "where larger β is only slower; such runs do not test the paper's statements.",
    ] if spec.dataset == "digits" else []) + sweep_notes(settings, curves)


# --- paired comparisons of the paper's claims (DESIGN §4.2: seeds and power) -----------------


class ExtremesTest(NamedTuple):
    """A paired sign test between the smallest and the largest swept value (same seeds).

    ``test`` is None when it could not run (``reason`` says why: a setting not stable for
    every seed, a quantity missing for a seed); ``low``/``high`` are the per-seed values."""

    low_value: float
    high_value: float
    low: np.ndarray
    high: np.ndarray
    test: Optional[PairedTest]
    reason: str

    def numbers(self, name: str) -> dict:
        """The decision's numbers, headline first: mean difference (high − low, signed as
        claimed), the smallest detectable effect, the p-value; then the seeds the measured
        effect would need, the per-setting seed means and the test's other numbers."""
        head: dict = {}
        if self.test is not None:
            t = self.test
            head = {"mean_difference": t.mean_difference,
                    "min_detectable_effect": t.min_detectable, "p_value": t.p_value,
                    "seeds": t.num_seeds, "in_claimed_direction": t.positive,
                    "spread": t.spread,
                    "seeds_needed_for_measured_effect": (
                        seeds_needed(t.mean_difference, t.spread)
                        if np.isfinite(t.spread) and t.mean_difference != 0 else None)}
        return {**head, "low_value": self.low_value, "high_value": self.high_value,
                f"{name}_low_seed_mean": float(np.nanmean(self.low)),
                f"{name}_high_seed_mean": float(np.nanmean(self.high))}

    @property
    def held(self) -> bool:
        return self.test is not None and self.test.held

    def note(self) -> str:
        """Why it did not hold ("" when it held)."""
        if self.test is None:
            return "undecided: " + self.reason
        return self.test.reason()


def extremes_test(curves: SweepCurves, run_regimes: np.ndarray, per_run: np.ndarray,
                  direction: int) -> ExtremesTest:
    """:func:`~adabias.studies.statistics.paired_test` of ``per_run`` (values, seeds) between the
    smallest and the largest swept value: the claim is direction·(high − low) > 0 seed by
    seed. Runs only when both settings are stable for every seed and finite."""
    order = np.argsort(curves.values)
    lo, hi = int(order[0]), int(order[-1])
    low, high = np.asarray(per_run[lo], float), np.asarray(per_run[hi], float)
    name = SYMBOLS[curves.spec.swept]
    values = float(curves.values[lo]), float(curves.values[hi])
    unstable = [f"{name}={curves.values[i]:g}" for i in (lo, hi)
                if not np.all(run_regimes[i] == "stable")]
    if unstable:
        return ExtremesTest(*values, low, high, None,
                            "not every seed stable at " + ", ".join(unstable))
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return ExtremesTest(*values, low, high, None, "the quantity is missing for "
                            f"{int(np.sum(~np.isfinite(low)) + np.sum(~np.isfinite(high)))} "
                            "runs (e.g. the loss never reached the threshold)")
    return ExtremesTest(*values, low, high, paired_test(low, high, direction), "")
