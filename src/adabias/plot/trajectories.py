"""Trajectories in a two-parameter landscape: contours, the minimum set, iterates with their
modified flows, and a zoom on the end points (CKS Figures 2 and 3).

The primitives take arrays and an axes; :func:`sweep_figure` composes them for sweeps of Adam on
the bilinear model (:mod:`adabias.studies.bilinear`): one row per sweep; on the left the
end-point measure s = |θ₁|+|θ₂| over time, zoomed to where the runs separate (in the full
landscape every path is the same straight line), with the landscape as an inset; on the right
the (θ₁, θ₂) plane zoomed on the end points.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.patches import Rectangle
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from adabias.plot import SYMBOLS, panels
from adabias.plot.orders import legend_below
from adabias.problems.bilinear import (BILINEAR_START, bilinear_landscape,
                                       bilinear_min_one_norm_point, bilinear_minimum_set,
                                       bilinear_one_norm_per_residual, bilinear_sign_flow_limit)
from adabias.studies.bilinear import FlowOverlay, Sweep, member_labels

#: (θ₁ range, θ₂ range) of the full bilinear landscape panel.
BILINEAR_LIMITS = ((0.0, 3.2), (0.0, 3.8))

#: Loss levels of the landscape contours.
LEVELS = np.logspace(-4, 2.5, 14)


def colors(count: int) -> list:
    """``count`` colours along viridis (0 to 0.9), one per member of a sweep."""
    cmap = colormaps["viridis"]
    return [cmap(0.9 * i / max(1, count - 1)) for i in range(count)]


def contours(ax, values: Callable, limits: tuple, *, points: int) -> None:
    """Contours (at :data:`LEVELS`) of ``values(grid_1, grid_2)`` (shape (len(grid_2),
    len(grid_1))) on the box ``limits`` = ((a0, a1), (b0, b1)), ``points`` × ``points`` grid."""
    (a0, a1), (b0, b1) = limits
    g1, g2 = np.linspace(a0, a1, points), np.linspace(b0, b1, points)
    ax.contour(g1, g2, np.asarray(values(g1, g2)), levels=LEVELS, colors="0.6", linewidths=0.5)


def bilinear_landscape_panel(ax, limits: tuple, *, points: int) -> None:
    """E's contours, the minima θ₁θ₂ = 3/4 and the cross (√¾, √¾) where it lies in ``limits``."""
    (a0, a1), (b0, b1) = limits
    contours(ax, bilinear_landscape, limits, points=points)
    t1 = np.linspace(max(a0, 1e-3), a1, 400)
    t2 = np.asarray(bilinear_minimum_set(t1))
    inside = (t2 >= b0) & (t2 <= b1)
    ax.plot(t1[inside], t2[inside], color="darkviolet", lw=1.5, label="minima θ₁θ₂ = 3/4")
    cross = np.asarray(bilinear_min_one_norm_point())
    if a0 <= cross[0] <= a1 and b0 <= cross[1] <= b1:
        ax.plot(*cross, "x", color="red", ms=10, mew=2, label="min ‖∇E‖₁ point (√¾, √¾)")


def trajectories(ax, paths: np.ndarray, ends: np.ndarray, flows: np.ndarray, *,
                 labels: Optional[Sequence[str]], colors: Sequence, linewidth: float,
                 flow_label: Optional[str]) -> None:
    """Each path (members, steps, 2) in its colour with its end point ``ends[i]`` as a dot, then
    the flows (members, points, 2) dashed in black (``labels``/``flow_label`` None: no legend
    entries)."""
    labels = labels if labels is not None else [None] * len(paths)
    for path, end, label, color in zip(paths, ends, labels, colors):
        ax.plot(path[:, 0], path[:, 1], color=color, lw=linewidth, label=label)
        ax.plot(*end, "o", color=color, ms=6, mec="k", mew=0.6)
    for i, flow in enumerate(flows):
        ax.plot(flow[:, 0], flow[:, 1], "--", color="k", lw=0.8, label=flow_label if i == 0 else None)


def zoom_limits(points: np.ndarray, *, margin: float = 0.35, min_size: float = 2e-3) -> tuple:
    """A square box around ``points`` (n, 2), padded by ``margin`` × its size (≥ ``min_size``)."""
    low, high = points.min(axis=0), points.max(axis=0)
    size = max(float(np.max(high - low)), min_size)
    center = (low + high) / 2
    half = size * (0.5 + margin)
    return ((center[0] - half, center[0] + half), (center[1] - half, center[1] + half))


def zoom_box(ax, limits: tuple) -> None:
    """The outline of a zoom box ``limits`` = ((a0, a1), (b0, b1))."""
    (a0, a1), (b0, b1) = limits
    ax.add_patch(Rectangle((a0, b0), a1 - a0, b1 - b0, fill=False, ec="k", lw=0.8))


def arrow_towards(ax, target: np.ndarray, limits: tuple, text: str) -> None:
    """A short arrow in the upper right of a square, equal-aspect panel pointing from the box
    centre's direction towards ``target`` (which may lie outside the box)."""
    (a0, a1), (b0, b1) = limits
    direction = np.asarray(target) - np.array([(a0 + a1) / 2, (b0 + b1) / 2])
    direction = direction / np.linalg.norm(direction)
    tail = np.array([0.80, 0.42]) - 0.08 * direction
    ax.annotate(text, xy=tuple(tail + 0.16 * direction), xytext=tuple(tail),
                xycoords="axes fraction", textcoords="axes fraction",
                arrowprops={"arrowstyle": "->", "color": "red"}, color="red", fontsize=8,
                ha="center", va="bottom")


def text_box(ax, text: str) -> None:
    """``text`` in a white box in the lower left corner."""
    ax.text(0.02, 0.02, text, transform=ax.transAxes, fontsize=7, va="bottom", ha="left",
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9})


#: The label of the end-point measure s = |θ₁| + |θ₂| (= ‖∇E‖₁/(x|r|) on the bilinear model).
S_LABEL = r"$s = |\theta_1| + |\theta_2|$"


def _time_axis_limits(sweep: Sweep) -> tuple[float, float, bool]:
    """(t_min, t_max, log): from half the earliest landing to the longest run; a log axis when
    the runs' lengths differ more than threefold (learning-rate sweeps)."""
    lengths = sweep.num_steps * sweep.learning_rate
    landing = float(np.min(sweep.approach_steps * sweep.learning_rate))
    return 0.5 * landing, float(np.max(lengths)), float(np.max(lengths) / np.min(lengths)) > 3


def one_norm_over_time(ax, sweep: Sweep, overlay: FlowOverlay, *, labels: Sequence[str],
                       colors: Sequence, reference: float) -> None:
    """s = |θ₁|+|θ₂| of every member against t = nh, the y axis zoomed to where the end points
    separate: each run's s (solid), its modified flow on the approach (dashed), its end-window
    mean s̄ (thick bar over the window) and the ε-signGD limit (grey)."""
    s = bilinear_one_norm_per_residual(sweep.params)
    steps = np.arange(sweep.params.shape[1])
    for i, (label, color) in enumerate(zip(labels, colors)):
        h = sweep.learning_rate[i]
        ax.plot(steps * h, s[i], color=color, lw=1.0, label=label)
        t_flow = np.linspace(0.0, sweep.approach_steps[i] * h, overlay.flow.shape[1])
        ax.plot(t_flow, bilinear_one_norm_per_residual(overlay.flow[i]), "--", color="k",
                lw=0.8, label="modified flow (2.2) on the approach" if i == 0 else None)
        window = np.array([sweep.window_start, sweep.num_steps]) * h
        ax.plot(window, [sweep.s_mean[i]] * 2, color=color, lw=4, alpha=0.8,
                solid_capstyle="butt", label=r"$\bar s$ (mean over the end window)" if i == 0 else None)
    ax.axhline(reference, color="0.45", ls=":", lw=1.2, label=f"ε-signGD limit (s = {reference:.3f})")
    values = np.concatenate([sweep.s_mean - sweep.s_jitter, sweep.s_mean + sweep.s_jitter,
                             [reference]])
    low, high = float(values.min()), float(values.max())
    span = max(high - low, 1e-3)
    ax.set_ylim(low - 0.15 * span, high + 2.0 * span)  # the runs below, the inset above
    t_min, t_max, log = _time_axis_limits(sweep)
    if log:  # plain tick labels 1, 2, 5, 10, … (not 2×10⁰)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(t_min, t_max * (1.15 if log else 1.02))
    ax.set_xlabel("time t = nh")
    ax.set_ylabel(S_LABEL + r" $= \|\nabla E\|_1 / (x|r|)$")


def landscape_inset(ax, sweep: Sweep, ends: np.ndarray, zoom: tuple, *, colors: Sequence,
                    landscape_points: int) -> None:
    """The whole landscape as an inset in the upper right of ``ax``: contours, θ₁θ₂ = 3/4, the
    cross, the start, every path and the zoom box of the right-hand panel."""
    inset = ax.inset_axes([0.57, 0.52, 0.41, 0.44])
    bilinear_landscape_panel(inset, BILINEAR_LIMITS, points=landscape_points)
    for path, end, color in zip(sweep.params, ends, colors):
        inset.plot(path[:, 0], path[:, 1], color=color, lw=0.8)
    inset.plot(*BILINEAR_START, "s", color="k", ms=3)
    zoom_box(inset, zoom)
    inset.set_xlim(*BILINEAR_LIMITS[0])
    inset.set_ylim(*BILINEAR_LIMITS[1])
    inset.set_aspect("equal")
    inset.tick_params(labelsize=6)
    inset.set_title("whole landscape; box: right panel", fontsize=7, pad=2)


def sweep_panels(ax_time, ax_zoom, sweep: Sweep, overlay: FlowOverlay, *, landscape_points: int,
                 title: str) -> None:
    """Left: s = |θ₁|+|θ₂| over time, zoomed to where the runs separate, with the landscape as
    an inset; right: a zoom of the (θ₁, θ₂) plane on the end points (dots: mean over the end
    window), with the ε-signGD reference and an arrow to the cross."""
    palette = colors(len(sweep.values))
    labels = member_labels(sweep, SYMBOLS)
    ends = np.stack([path[sweep.window_start:].mean(axis=0) for path in sweep.params])
    reference = np.asarray(bilinear_sign_flow_limit())
    zoom = zoom_limits(np.vstack([sweep.params[:, -1], ends, reference[None]]))

    one_norm_over_time(ax_time, sweep, overlay, labels=labels, colors=palette,
                       reference=float(np.sum(reference)))
    landscape_inset(ax_time, sweep, ends, zoom, colors=palette, landscape_points=landscape_points)
    ax_time.set_title(title)
    legend_below(ax_time, ncol=2)

    bilinear_landscape_panel(ax_zoom, zoom, points=landscape_points)
    trajectories(ax_zoom, sweep.params, ends, overlay.flow, labels=None, colors=palette,
                 linewidth=0.8, flow_label="modified flow (2.2)")
    ax_zoom.plot(*reference, "D", color="0.4", ms=5, label="ε-signGD limit (θ₂ − θ₁ = 0.7)")
    arrow_towards(ax_zoom, np.asarray(bilinear_min_one_norm_point()), zoom, "to the cross")
    ax_zoom.set_xlim(*zoom[0])
    ax_zoom.set_ylim(*zoom[1])
    ax_zoom.set_aspect("equal")
    ax_zoom.set_title(f"(θ₁, θ₂) near the end points; dots: mean over the last "
                      f"{sweep.num_steps - sweep.window_start} steps")
    ax_zoom.legend(loc="upper right", fontsize=7)
    lines = [f"{label}: s̄ = {s:.4f}" for label, s in zip(labels, sweep.s_mean)]
    text_box(ax_zoom, "s̄ = mean |θ₁|+|θ₂| (cross: 1.7321)\n" + "\n".join(lines))
    ax_zoom.set_xlabel(r"$\theta_1$")
    ax_zoom.set_ylabel(r"$\theta_2$")


def sweep_figure(sweeps: Sequence[Sweep], overlays: Sequence[FlowOverlay], titles: Sequence[str], *,
                 landscape_points: int, suptitle: str):
    """One row per sweep: s over time with the landscape inset, and the zoom on the end points
    (:func:`sweep_panels`)."""
    figure, axes = panels(len(sweeps), 2, width=6.0, height=6.0)
    for row, (sweep, overlay, title) in enumerate(zip(sweeps, overlays, titles)):
        sweep_panels(axes[row, 0], axes[row, 1], sweep, overlay, landscape_points=landscape_points,
                     title=title)
    figure.suptitle(suptitle)
    return figure
