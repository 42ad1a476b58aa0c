"""Plotting for adabias: one style, one table of symbols, and the figures the experiments draw.

Every experiment draws through this package, so restyling a figure means calling these
functions (or editing them here), never editing an experiment. Figures are returned, not
shown or saved: ``figure.savefig(...)`` is the caller's choice.

- :func:`panels` — a grid of axes with the package's style.
- :data:`SYMBOLS` — hyperparameter names as they are written in the papers (h, β, ρ, ε, λ);
  the table lives in :mod:`adabias.studies.symbols`.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from adabias.studies.symbols import SYMBOLS  # noqa: E402  (the one table, re-exported)

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

def diag_power_trace_label(power: str) -> str:
    """tr(Diag(H)^power) in mathtext, e.g. ``diag_power_trace_label("1/2")``."""
    return rf"$\mathrm{{tr}}(\mathrm{{Diag}}(H)^{{{power}}})$"


#: SGD's label-noise measure tr(H) in mathtext.
TRACE_H = r"$\mathrm{tr}(H)$"


def panels(rows: int, cols: int, *, width: float = 3.2, height: float = 2.6, **kwargs):
    """A figure with a rows × cols grid of axes (always a 2-d array) and tight layout."""
    figure, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                                layout="constrained", **kwargs)
    return figure, axes


__all__ = ["SYMBOLS", "TRACE_H", "diag_power_trace_label", "panels"]
