"""Figures of the memory-corrected flows (DESIGN §3.6): error against h in one panel per
optimizer, and where the flows stop tracking — the global error and the stability ratio
λ_max(P^{−1/2}HP^{−1/2})·(1−β₁)h/(2(1+β₁)) against h."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from adabias.plot import panels
from adabias.plot.orders import OrderCurve, error_against_h, log_h_axis

__all__ = ["order_panels", "error_and_stability"]

_COLORS = ("C0", "C3", "C2", "C1", "C4", "C5")


def order_panels(step_sizes: Sequence[float],
                 curves: Mapping[str, Mapping[str, tuple[Sequence[float], float]]], *,
                 columns: int = 4):
    """One log-log panel of error against h per entry of ``curves`` (title -> {label:
    (errors, slope)}); labels ending in "order 0" are dashed with open markers, each
    label's prefix before the comma keeps one color across panels, and the h axis is
    ticked at the step sizes."""
    rows = math.ceil(len(curves) / columns)
    figure, axes = panels(rows, columns, width=4.4, height=4.1)
    prefixes = list(dict.fromkeys(label.split(",")[0] for c in curves.values() for label in c))
    for ax, (title, members) in zip(axes.flat, curves.items()):
        styled = {}
        for label, (errors, slope) in members.items():
            color = _COLORS[prefixes.index(label.split(",")[0]) % len(_COLORS)]
            zeroth = label.endswith("order 0")
            styled[label] = OrderCurve(errors, slope, dict(color=color, ms=4,
                                                           marker="s" if zeroth else "o",
                                                           ls="--" if zeroth else "-",
                                                           mfc="none" if zeroth else color))
        error_against_h(ax, step_sizes, styled)
        ax.set_xticks(list(step_sizes), [f"{h:g}" for h in step_sizes], fontsize=7)
        ax.set_title(title)
    for ax in list(axes.flat)[len(curves):]:
        ax.set_visible(False)
    return figure


def error_and_stability(ax, step_sizes: Sequence[float], errors: Sequence[float],
                        ratios: Sequence[float], *, slopes: Sequence[float] = (),
                        error_label: str = "global error of the flow",
                        marks: Sequence[tuple[float, str]] = ()) -> object:
    """Log-log error against h (left axis, with the local slopes between neighbours written
    at the segments' midpoints) and the stability ratio (right axis, log; the edge of
    stability, ratio 1, dotted; further ``(ratio, label)`` ``marks`` dotted in green).
    Returns the right axis."""
    h = np.asarray(step_sizes, float)
    ax.loglog(h, errors, "o-", color="C0", label=error_label)
    for (h0, h1), (e0, e1), slope in zip(zip(h, h[1:]), zip(errors, errors[1:]), slopes):
        ax.annotate(f"{slope:.2f}", (math.sqrt(h0 * h1), math.sqrt(e0 * e1)), fontsize=7,
                    color="C0", textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xlabel("step size h")
    ax.set_ylabel(r"global error $\sup_n\,\|\theta(nh) - \theta^{(n)}\|_\infty$", color="C0")
    right = ax.twinx()
    right.loglog(h, ratios, "s--", color="C3", label="stability ratio (max over the run)")
    right.axhline(1.0, color="C3", ls=":", lw=1, label="edge of stability (ratio 1)")
    for ratio, label in marks:
        right.axhline(ratio, color="C2", ls=":", lw=1, label=label)
    right.set_ylabel(r"stability ratio $\lambda_{\max}(P^{-1/2}HP^{-1/2})\,/\,"
                     r"\frac{2(1+\beta_1)}{(1-\beta_1)h}$", color="C3")
    log_h_axis(ax)
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper center",
              bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=7)
    return right
