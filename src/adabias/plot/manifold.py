"""Panels for slow ODEs near the minimizer manifold Γ (LWL; DESIGN §3.5).

- :func:`tracking_panel` — ‖seed mean of the iterates mapped to Γ − ζ(T)‖ against η (log-log),
  with the seed-mean standard error and an ∝ η reference.
- :func:`slow_time_panel` — curves along the slow time t = kη² (a measure, a projected
  gradient, distances), with constant reference lines.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import matplotlib.ticker
import numpy as np

__all__ = ["Curve", "Level", "tracking_panel", "slow_time_panel"]


class Curve(NamedTuple):
    """A curve y(t) of a panel: values, legend label, matplotlib line style (color, ls, ...)."""

    y: Any
    label: str
    style: Mapping[str, Any] = {}


class Level(NamedTuple):
    """A constant reference line: horizontal at y = ``value`` (or vertical with ``vertical``)."""

    value: float
    label: str
    style: Mapping[str, Any] = {}
    vertical: bool = False


def tracking_panel(ax, learning_rate: Sequence[float], distance: Sequence[float],
                   standard_error: Sequence[float], ode_displacement: float, *,
                   horizon: float, problem: str) -> None:
    """ODE against the simulations after K = T/η² steps: distance and standard error per η."""
    rates = np.asarray(learning_rate)
    ax.loglog(rates, distance, "o-", label=r"$\|\mathrm{mean}\,\Phi(\theta_K) - \zeta(T)\|$")
    ax.loglog(rates, standard_error, "s--", label="seed-mean standard error")
    ax.loglog(rates, ode_displacement * rates / rates[0], "k:", label="∝ η (reference)")
    ax.set_xticks(rates, [f"{rate:g}" for rate in rates])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("η")
    ax.set_ylabel("distance on Γ")
    ax.set_title(f"{problem}: ODE vs Adam after K = T/η², T = {horizon}")
    ax.legend(fontsize=7)


def slow_time_panel(ax, t: Sequence[float], curves: Sequence[Curve], *, ylabel: str, title: str,
                    levels: Sequence[Level] = (), log: bool = False) -> None:
    """``curves`` against the slow time t = kη² (log y with ``log``), then the ``levels``."""
    draw = ax.semilogy if log else ax.plot
    for curve in curves:
        draw(t, curve.y, label=curve.label, **curve.style)
    for level in levels:
        line = ax.axvline if level.vertical else ax.axhline
        line(level.value, label=level.label, **level.style)
    ax.set_xlabel("slow time t = kη²")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
