"""Statistics claims are decided with: rank correlation, the monotone decision, hill heights.

"Monotone in a swept parameter" (CKS Figures 4–6) is decided by Spearman's rank correlation r
between the parameter and the seed-mean quantity over the stable settings: held when there
are at least three of them and sign·r ≥ :data:`MONOTONE_THRESHOLD`.
"""

from __future__ import annotations

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
