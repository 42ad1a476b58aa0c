"""Helpers on recorded curves (a loss or a measure along training)."""

from __future__ import annotations

import numpy as np


def first_index_below(curve: np.ndarray, level: float, *, or_equal: bool = False) -> int:
    """The first index i with curve[i] < level (≤ level with ``or_equal``); −1 if there is none."""
    curve = np.asarray(curve)
    below = np.flatnonzero(curve <= level if or_equal else curve < level)
    return int(below[0]) if below.size else -1
