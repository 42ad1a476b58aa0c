"""Statistics claims are decided with: rank correlation, the monotone decision, hill heights.

"Monotone in a swept parameter" (CKS Figures 4–6) is decided by Spearman's rank correlation r
between the parameter and the seed-mean quantity over the stable settings: held when there
are at least three of them and sign·r ≥ :data:`MONOTONE_THRESHOLD`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

MONOTONE_THRESHOLD = 0.8


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0…n−1 of x, ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size)
    ranks[order] = np.arange(x.size)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's r: Pearson correlation of the ranks (NaN when fewer than 2 points or constant)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size != y.size:
        raise ValueError(f"x and y must have equal sizes, got {x.size} and {y.size}")
    if x.size < 2:
        return float("nan")
    rx, ry = _ranks(x) - (x.size - 1) / 2, _ranks(y) - (y.size - 1) / 2
    denominator = np.sqrt(np.sum(rx * rx) * np.sum(ry * ry))
    return float(np.sum(rx * ry) / denominator) if denominator > 0 else float("nan")


def rank_correlation_by_column(x: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Spearman r between ``x`` (n,) and ``columns[:, t]`` (n, T) for every t."""
    return np.array([rank_correlation(x, columns[:, t]) for t in range(columns.shape[1])])


def monotone(x: np.ndarray, y: np.ndarray, sign: int) -> tuple[bool, float]:
    """(held, r): y rises (sign=+1) or falls (sign=−1) with x by the rank criterion.

    Held when there are at least 3 points and sign·r ≥ ``MONOTONE_THRESHOLD``.
    """
    r = rank_correlation(x, y)
    held = len(x) >= 3 and np.isfinite(r) and sign * r >= MONOTONE_THRESHOLD
    return bool(held), r


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Mean over ``window`` consecutive entries (length len(x) − window + 1)."""
    if window < 1:
        raise ValueError(f"window must be positive, got window={window!r}")
    x = np.asarray(x, dtype=np.float64)
    window = min(window, x.size)
    cumulative = np.concatenate([[0.0], np.cumsum(x)])
    return (cumulative[window:] - cumulative[:-window]) / window


def rise_over_running_min(smooth: np.ndarray) -> np.ndarray:
    """S(t) / min_{s≤t} S(s): how far a curve stands above the lowest point it has reached."""
    return smooth / np.minimum.accumulate(smooth)


def hill_height(curve: np.ndarray, window: int) -> float:
    """Height of the "hill" of a curve (CKS Figure 6): max_t S(t) / min_{s≤t} S(s) ≥ 1.

    S is the curve smoothed by a ``window``-epoch moving average; the ratio is the largest
    rise of the smoothed curve above its running minimum, i.e. above the valley left by the
    first decrease (1 means the curve never rose again).
    """
    return float(np.max(rise_over_running_min(moving_average(curve, window))))


def hill_heights(curves: np.ndarray, window: int) -> np.ndarray:
    """:func:`hill_height` of every curve of ``curves`` (..., T) → shape (...)."""
    out = np.empty(curves.shape[:-1])
    for index in np.ndindex(out.shape):
        out[index] = hill_height(curves[index], window)
    return out


# --- paired comparisons over seeds (DESIGN §4.3: every empirical claim states its test) -----

#: One-sided level of the paired tests, and the power the smallest detectable effect is for.
PAIRED_ALPHA = 0.01
PAIRED_POWER = 0.8


class PairedTest(NamedTuple):
    """A one-sided paired comparison of two settings over the same seeds.

    ``differences`` dᵢ = (b − a) for seed i, with the claim being dᵢ > 0 (``direction=+1``)
    or dᵢ < 0 (−1); ``num_seeds`` pairs, ``untied`` of them with dᵢ ≠ 0, ``positive`` of those
    in the claimed direction. ``p_value`` is the exact sign test's (ties dropped); ``min_detectable`` the
    smallest mean difference the test detects with probability :data:`PAIRED_POWER` at level
    ``alpha`` given the seed-to-seed spread s of the differences, (z₁₋α + z_power)·s/√n (normal
    approximation). ``outcome`` is ``"held"`` (p < α in the claimed direction),
    ``"contradicted"`` (p < α the other way) or ``"undecided"``.
    """

    num_seeds: int
    positive: int
    untied: int
    p_value: float
    mean_difference: float
    spread: float
    min_detectable: float
    alpha: float
    outcome: str

    @property
    def held(self) -> bool:
        return self.outcome == "held"

    def numbers(self) -> dict:
        return {"seeds": self.num_seeds, "in_claimed_direction": self.positive,
                "nonzero_differences": self.untied,
                "p_value": self.p_value, "mean_difference": self.mean_difference,
                "spread": self.spread, "min_detectable_effect": self.min_detectable}

    def reason(self) -> str:
        """Why it did not hold, in words ("" when it held)."""
        if self.held:
            return ""
        if self.outcome == "contradicted":
            return (f"contradicted: {self.untied - self.positive} of {self.num_seeds} paired "
                    f"seeds go the other way (sign test p = {self.p_value_against:.2g})")
        if self.untied == 0:
            return (f"undecided: all {self.num_seeds} paired differences are exactly zero (the "
                    "two settings gave equal values in every seed)")
        return (f"undecided: mean difference {self.mean_difference:.3g} against a smallest "
                f"detectable effect of {self.min_detectable:.3g} (seed spread "
                f"{self.spread:.3g}, {self.num_seeds} seeds); sign test p = {self.p_value:.2g}")

    @property
    def p_value_against(self) -> float:
        return sign_test_p(self.untied - self.positive, self.untied)


def sign_test_p(successes: int, trials: int) -> float:
    """One-sided exact sign test: P(X ≥ successes), X ~ Binomial(trials, ½); 1 when no trials."""
    if trials <= 0:
        return 1.0
    from scipy.stats import binom

    return float(binom.sf(successes - 1, trials, 0.5))


def min_detectable_effect(spread: float, num_seeds: int, *, alpha: float = PAIRED_ALPHA,
                          power: float = PAIRED_POWER) -> float:
    """(z₁₋α + z_power)·s/√n: the mean paired difference a one-sided level-α test over n seeds
    with difference spread s detects with probability ``power`` (normal approximation)."""
    from scipy.stats import norm

    if num_seeds < 1:
        return float("inf")
    return float((norm.ppf(1 - alpha) + norm.ppf(power)) * spread / np.sqrt(num_seeds))


def seeds_needed(effect: float, spread: float, *, alpha: float = PAIRED_ALPHA,
                 power: float = PAIRED_POWER) -> int:
    """The smallest n with :func:`min_detectable_effect` ≤ |effect| and with n seeds all in one
    direction significant for the sign test (2⁻ⁿ < α)."""
    from scipy.stats import norm

    floor = int(np.ceil(np.log2(1 / alpha) + 1e-12))
    if effect == 0:
        return np.iinfo(np.int32).max
    z = norm.ppf(1 - alpha) + norm.ppf(power)
    return max(floor, int(np.ceil((z * spread / abs(effect)) ** 2)))


def paired_test(a: np.ndarray, b: np.ndarray, direction: int, *,
                alpha: float = PAIRED_ALPHA) -> PairedTest:
    """The one-sided paired sign test of direction·(b − a) > 0 over seeds (:class:`PairedTest`)."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or −1, got {direction!r}")
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"a and b must be equal-length, non-empty seed arrays, got {a.shape} "
                         f"and {b.shape}")
    d = direction * (b - a)
    if not np.all(np.isfinite(d)):
        raise ValueError("paired_test: non-finite differences (a diverged run?)")
    untied = d[d != 0]
    n, positive = int(untied.size), int(np.sum(untied > 0))
    p = sign_test_p(positive, n)
    spread = float(np.std(d, ddof=1)) if d.size > 1 else float("inf")
    outcome = ("held" if p < alpha else
               "contradicted" if sign_test_p(n - positive, n) < alpha else "undecided")
    return PairedTest(int(d.size), positive, n, p, float(np.mean(d)), spread,
                      min_detectable_effect(spread, int(d.size), alpha=alpha), alpha, outcome)
