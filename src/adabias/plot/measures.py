"""Plotting primitives for measures along training and for test loss against the sample size.

Small pieces the LWL experiments compose: curves against the step (losses on a log scale,
a reference level, marked steps, the step axis in scientific notation) and the mean ± standard
error over runs against n with the single runs as dots. They draw on the axes they are given.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "OPTIMIZER_COLORS",
    "mark_step",
    "mean_with_sem",
    "optimizer_label",
    "reference_level",
    "runs_as_dots",
    "step_axes",
    "train_and_test",
]

#: Colors of LWL's Adam and of SGD wherever the two are compared.
OPTIMIZER_COLORS = {"adam": "C3", "sgd": "C0"}


def optimizer_label(name: str, learning_rate: float) -> str:
    """"Adam (η = …)" or "SGD (η = …)" for the names "adam" and "sgd"."""
    return f"{'Adam' if name == 'adam' else 'SGD'} (η = {learning_rate})"


def reference_level(ax, value: float, *, label: str) -> None:
    """A thin dashed black horizontal line at ``value`` (e.g. a measure at a reference point)."""
    ax.axhline(value, color="k", ls="--", lw=0.8, label=label)


def mark_step(axes: Iterable, step: float, *, color: str) -> None:
    """A dotted vertical line at ``step`` on each of ``axes`` (e.g. where the loss became small)."""
    for ax in axes:
        ax.axvline(step, color=color, ls=":", lw=1)


def train_and_test(ax, steps: np.ndarray, train: np.ndarray, test: np.ndarray, *, color: str,
                   train_label: str, test_label: str) -> None:
    """Training loss (solid) and test loss (dashed) against the step, log scale."""
    ax.semilogy(steps, train, color=color, label=train_label)
    ax.semilogy(steps, test, "--", color=color, label=test_label)


def step_axes(axes: Iterable, titles: Sequence[str], ylabels: Sequence[str]) -> None:
    """Each of ``axes`` with its title, x axis "step" in scientific notation, its y label and a
    small legend."""
    for ax, title, label in zip(axes, titles, ylabels, strict=True):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.set_ylabel(label)
        ax.legend(fontsize=7)


def mean_with_sem(ax, x: np.ndarray, mean: np.ndarray, sem: np.ndarray, *, color: str,
                  label: str) -> None:
    """Mean ± standard error against x, "o-" with caps; the lower bar stops short of zero (log axes)."""
    mean, sem = np.asarray(mean), np.asarray(sem)
    lower = np.minimum(sem, mean * 0.999)
    ax.errorbar(x, mean, yerr=[lower, sem], fmt="o-", color=color, capsize=3, label=label)


def runs_as_dots(ax, x: float, values: np.ndarray, *, color: str) -> None:
    """The single runs' values at one x, as faint dots."""
    ax.plot(np.full(np.size(values), x), values, ".", color=color, alpha=0.25, ms=3)
