"""Convergence-order figures: a global error against the step size h on log-log axes, each
curve with the order fitted to it, and dotted reference slopes 1 and 2 through the data."""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional, Sequence

import numpy as np
from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter, NullLocator

#: The y label of a global-error panel: sup over the saved steps of the max-norm difference.
GLOBAL_ERROR = r"global error $\mathrm{sup}_n \|\theta(nh) - \theta^{(n)}\|_\infty$"


class OrderCurve(NamedTuple):
    """One curve of :func:`error_against_h`: errors per step size, the order fitted to them
    (shown in the legend) and matplotlib style keywords."""

    errors: Sequence[float]
    order: float
    style: Mapping[str, Any]


def error_against_h(ax, step_sizes: Sequence[float], curves: Mapping[str, OrderCurve], *,
                    xlabel: str = "step size h", ylabel: str = GLOBAL_ERROR) -> None:
    """Log-log error against h, one line per ``curves[label]`` labelled with its fitted order,
    and dotted reference slopes 1 and 2 through the largest error (kept above a third of
    the smallest)."""
    h = np.asarray(step_sizes)
    for label, curve in curves.items():
        ax.loglog(h, curve.errors, label=f"{label}: slope {curve.order:.2f}", **curve.style)
    top = float(np.max([np.max(c.errors) for c in curves.values()]))
    bottom = float(np.min([np.min(c.errors) for c in curves.values()]))
    h_max = float(h.max())
    for power, color in ((1, "0.35"), (2, "0.65")):
        ref = top * (h / h_max) ** power
        keep = ref >= bottom / 3
        ax.loglog(h[keep], ref[keep], ":", color=color, lw=1.5, label=f"reference slope {power}")
    log_h_axis(ax, h)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    legend_below(ax, ncol=2)


def log_h_axis(ax, step_sizes: Optional[Sequence[float]] = None) -> None:
    """A logarithmic h axis labelled at the step sizes themselves (3 significant digits; every
    other one beyond six), without minor tick labels (a few octaves crowd them)."""
    ax.xaxis.set_minor_formatter(NullFormatter())
    if step_sizes is not None:
        h = np.sort(np.unique(np.asarray(step_sizes, dtype=float)))
        shown = h[::-1][::2][::-1] if len(h) > 6 else h
        ax.xaxis.set_major_locator(FixedLocator(shown))
        ax.xaxis.set_major_formatter(FixedFormatter([f"{v:.3g}" for v in shown]))
        ax.xaxis.set_minor_locator(NullLocator())


def legend_below(ax, *, ncol: int = 1) -> None:
    """The legend under the axes, in small type (long labels, several curves)."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, fontsize=7)


__all__ = ["GLOBAL_ERROR", "OrderCurve", "error_against_h", "legend_below", "log_h_axis"]
