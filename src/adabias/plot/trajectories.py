"""Trajectories in a two-parameter landscape: contours, the minimum set, iterates with their
modified flows, and a zoom on the end points (CKS Figures 2 and 3).

The primitives take arrays and an axes; :func:`sweep_figure` composes them for sweeps of Adam on
the bilinear model (:mod:`adabias.studies.bilinear`): one row per sweep, the landscape with every
trajectory and its flow on the left, a zoom on the end points on the right.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.patches import Rectangle

from adabias.plot import SYMBOLS, panels
from adabias.problems.bilinear import (BILINEAR_START, bilinear_landscape,
                                       bilinear_min_one_norm_point, bilinear_minimum_set,
                                       bilinear_sign_flow_limit)
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
                 labels: Sequence[str], colors: Sequence, linewidth: float,
                 flow_label: str) -> None:
    """Each path (members, steps, 2) in its colour with its end point ``ends[i]`` as a dot, then
    the flows (members, points, 2) dashed in black."""
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


def sweep_panels(ax_full, ax_zoom, sweep: Sweep, overlay: FlowOverlay, *, landscape_points: int,
                 title: str) -> None:
    """Left: the landscape, θ₁θ₂ = 3/4, the cross and every trajectory with its flow overlay;
    right: a zoom on the end points (dots: mean over the end window), with the ε-signGD
    reference and an arrow to the cross."""
    palette = colors(len(sweep.values))
    labels = member_labels(sweep, SYMBOLS)
    ends = np.stack([path[sweep.window_start:].mean(axis=0) for path in sweep.params])
    flow_label = "modified flow (2.2) on the approach"
    reference = np.asarray(bilinear_sign_flow_limit())

    bilinear_landscape_panel(ax_full, BILINEAR_LIMITS, points=landscape_points)
    trajectories(ax_full, sweep.params, ends, overlay.flow, labels=labels, colors=palette,
                 linewidth=1.4, flow_label=flow_label)
    ax_full.plot(*BILINEAR_START, "s", color="k", ms=5, label="start (2.8, 3.5)")
    zoom = zoom_limits(np.vstack([sweep.params[:, -1], ends, reference[None]]))
    zoom_box(ax_full, zoom)
    ax_full.set_xlim(*BILINEAR_LIMITS[0])
    ax_full.set_ylim(*BILINEAR_LIMITS[1])
    ax_full.set_aspect("equal")
    ax_full.set_title(title)
    ax_full.legend(loc="upper left", fontsize=7)

    bilinear_landscape_panel(ax_zoom, zoom, points=landscape_points)
    trajectories(ax_zoom, sweep.params, ends, overlay.flow, labels=labels, colors=palette,
                 linewidth=0.8, flow_label=flow_label)
    ax_zoom.plot(*reference, "D", color="0.4", ms=5, label="ε-signGD limit (θ₂ − θ₁ = 0.7)")
    arrow_towards(ax_zoom, np.asarray(bilinear_min_one_norm_point()), zoom, "to the cross")
    ax_zoom.set_xlim(*zoom[0])
    ax_zoom.set_ylim(*zoom[1])
    ax_zoom.set_aspect("equal")
    ax_zoom.set_title(f"zoom near the end points; dots: mean position over the last "
                      f"{sweep.num_steps - sweep.window_start} steps")
    ax_zoom.legend(loc="upper right", fontsize=7)
    lines = [f"{label}: s̄ = {s:.4f}" for label, s in zip(labels, sweep.s_mean)]
    text_box(ax_zoom, "s̄ = mean |θ₁|+|θ₂| (cross: 1.7321)\n" + "\n".join(lines))
    for ax in (ax_full, ax_zoom):
        ax.set_xlabel("θ₁")
        ax.set_ylabel("θ₂")


def sweep_figure(sweeps: Sequence[Sweep], overlays: Sequence[FlowOverlay], titles: Sequence[str], *,
                 landscape_points: int, suptitle: str):
    """One row per sweep: full landscape and zoom (:func:`sweep_panels`)."""
    figure, axes = panels(len(sweeps), 2, width=5.0, height=5.2)
    for row, (sweep, overlay, title) in enumerate(zip(sweeps, overlays, titles)):
        sweep_panels(axes[row, 0], axes[row, 1], sweep, overlay, landscape_points=landscape_points,
                     title=title)
    figure.suptitle(suptitle)
    return figure
