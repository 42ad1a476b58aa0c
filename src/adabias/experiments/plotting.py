"""Shared figure conventions for the experiments: one place for style and layout."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
})


def panels(rows: int, cols: int, *, width: float = 3.2, height: float = 2.6, **kwargs):
    """A figure with a rows × cols grid of axes (always a 2-d array) and tight layout."""
    figure, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                                layout="constrained", **kwargs)
    return figure, axes
