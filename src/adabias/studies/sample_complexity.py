"""Test loss against the number of samples n, with label noise: nested, padded, stacked data sets.

For every n of a grid and both optimizers (LWL's Adam in AGM form, SGD), one label-noise sweep
over seeds (:func:`adabias.studies.label_noise.train`). Two devices keep this to one compiled
program per optimizer:

* **padding**: the n samples are the first n rows of one data set of n_max rows (nested
  designs); rows ≥ n are zero (z = 0, y = 0), which adds nothing to the gradient even with label
  noise (∂f/∂θ ∝ z = 0), and the factor n_max/n turns the mean over n_max rows into the mean
  over the n real ones (:func:`pad_samples`);
* **stacked data sets**: each sweep member trains one copy of the model per data set, stacked
  along a leading axis, on the sum of the per-copy losses (:func:`stacked_loss`). The AGM with
  V = diag and SGD act coordinate-wise, so the copies are exactly independent runs (tested);
  the spread over data sets, the main source of variation, is then inside one sweep.

The sample complexity n* is the smallest n of the grid whose mean final test loss is at most a
threshold (:func:`sample_complexity`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import adabias as ab
from adabias.studies import label_noise

__all__ = [
    "OPTIMIZERS",
    "LabelNoiseSampleComplexity",
    "RunStatistics",
    "pad_samples",
    "recovered_fraction",
    "run_statistics",
    "sample_complexity",
    "stacked_data",
    "stacked_loss",
    "stacked_padded",
    "sweeps_over_n",
    "train_copies",
]

#: The two optimizers compared, in this order: LWL's Adam (AGM form) and SGD.
OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LabelNoiseSampleComplexity:
    """The label-noise training the sample-complexity experiments share. The grid of n, the
    record spacing and SGD's learning rate have no default: each experiment sets its own."""

    ns: tuple[int, ...]  # the grid of sample sizes n (nested designs)
    delta: float = 0.5  # label noise y ← y + δξ
    init_scale: float = 0.01  # small initialisation
    num_datasets: int = 4  # data sets stacked in every sweep member
    num_seeds: int = 3  # seeds (initialisation and label noise) per optimizer and n
    num_steps: int = 20_000
    save_every: int  # steps between records
    adam_learning_rate: float = 0.01  # η of Adam (AGM form)
    beta1: float = 0.9  # the authors' values
    beta2: float = 0.95
    eps: float = 1e-6
    sgd_learning_rate: float  # η of SGD
    data_seed: int = 0  # key of the data sets
    seed: int = 1  # key of the sweeps (initialisation and label noise)


# --- data: nested designs, padded to n_max rows, several data sets stacked -------------------


def pad_samples(batch: Mapping[str, jax.Array], n: int) -> dict:
    """Keep the first ``n`` samples (leading axis) of every entry, zero the rest, add "scale".

    Zero rows (z = 0, y = 0 or A_i = 0) contribute nothing to the gradient of a loss
    ½·mean_i(f_i − y_i)² whose prediction is linear in the features, whatever their (noisy)
    label; "scale" = n_max/n turns the mean over the n_max rows into the mean over the n kept.
    """
    n_max = int(jax.tree.leaves(batch)[0].shape[0])
    if not 1 <= n <= n_max:
        raise ValueError(f"n must be in [1, n_max={n_max}], got n={n!r}")
    keep = jnp.arange(n_max) < n
    out = {name: jnp.where(keep.reshape((-1,) + (1,) * (x.ndim - 1)), x, 0)
           for name, x in batch.items()}
    out["scale"] = jnp.asarray(n_max / n, dtype=jnp.result_type(float))
    return out


@functools.lru_cache(maxsize=None)
def stacked_loss(loss_fn: Callable[[Any, dict], jax.Array]) -> Callable[[Any, dict], jax.Array]:
    """Σ_c scale_c·loss_fn(params_c, batch_c) over copies c stacked along the leading axis.

    ``batch`` holds the stacked (padded) batches, "scale" included; the gradient with respect
    to copy c is that of its own loss, so coordinate-wise optimizers train the copies
    independently. Cached: the same ``loss_fn`` gives the same function, so sweeps over
    several n reuse one compiled program.
    """

    def loss(params: Any, batch: dict) -> jax.Array:
        data = {name: x for name, x in batch.items() if name != "scale"}
        per_copy = jax.vmap(loss_fn)(params, data)
        return jnp.sum(batch["scale"] * per_copy)

    return loss


def stacked_data(make_data: Callable[[jax.Array], tuple[dict, jax.Array]], key: jax.Array,
                 num_datasets: int) -> tuple[dict, jax.Array]:
    """``num_datasets`` draws of ``make_data(key) -> (batch, truth)``, stacked along axis 0."""
    if num_datasets < 1:
        raise ValueError(f"num_datasets must be >= 1, got {num_datasets!r}")
    draws = [make_data(jax.random.fold_in(key, j)) for j in range(num_datasets)]
    batches = jax.tree.map(lambda *xs: jnp.stack(xs), *[b for b, _ in draws])
    return batches, jnp.stack([t for _, t in draws])


def stacked_padded(batches: dict, n: int) -> dict:
    """:func:`pad_samples` applied to every stacked data set (axis 1 holds the samples)."""
    return jax.vmap(lambda b: pad_samples(b, n))(batches)


# --- training ----------------------------------------------------------------------------


def train_copies(make_optimizer: Callable, learning_rate: float, loss_fn: Callable,
                 init_copy: Callable[[jax.Array], Any], batches: dict,
                 settings: LabelNoiseSampleComplexity, *, progress: bool = False,
                 noise_fn: Optional[Callable] = None,
                 grid: Optional[Mapping[str, Sequence[float]]] = None) -> ab.engine.SweepResult:
    """One label-noise sweep over ``num_seeds`` seeds; each member trains one copy per stacked
    data set.

    ``init_copy(key)`` draws one copy's start; seed s uses key fold_in(key(seed), s) for its
    copies' starts (split per copy) and for its label noise (``delta``), the same at every grid
    point. ``grid`` (traced hyperparameters, e.g. {"lam": [...]}) replaces
    {"learning_rate": [learning_rate]} when given; members are grid points × seeds.
    """
    num_copies = int(jax.tree.leaves(batches)[0].shape[0])

    def init_params(key: jax.Array) -> Any:
        return jax.vmap(init_copy)(jax.random.split(key, num_copies))

    return label_noise.train(make_optimizer, stacked_loss(loss_fn), None, batches,
                             init_params=init_params, delta=settings.delta,
                             grid={"learning_rate": [learning_rate]} if grid is None else grid,
                             num_steps=settings.num_steps, num_seeds=settings.num_seeds,
                             save_every=settings.save_every, key=jax.random.key(settings.seed),
                             progress=progress, noise_fn=noise_fn)


def sweeps_over_n(settings: LabelNoiseSampleComplexity, loss_fn: Callable,
                  init_copy: Callable[[jax.Array], Any], data: dict, *,
                  track: Callable[[list], Iterable]) -> Iterator[tuple[str, int, ab.engine.SweepResult]]:
    """(optimizer, n, sweep) for every optimizer of :data:`OPTIMIZERS` and n of the grid, in
    that order: :func:`train_copies` on the stacked ``data`` padded to n samples.

    ``track(jobs)`` wraps the list of (optimizer, n) jobs (e.g. in a progress bar).
    """
    factories = label_noise.optimizer_factories(beta1=settings.beta1, beta2=settings.beta2,
                                                eps=settings.eps)
    rates = {"adam": settings.adam_learning_rate, "sgd": settings.sgd_learning_rate}
    jobs = [(name, n) for name in OPTIMIZERS for n in settings.ns]
    for name, n in track(jobs):
        yield name, n, train_copies(factories[name], rates[name], loss_fn, init_copy,
                                    stacked_padded(data, n), settings)


# --- statistics over the runs (data sets × seeds) of every (optimizer, n) ---------------------


class RunStatistics(NamedTuple):
    """Per (optimizer, n): mean, standard error of the mean and standard deviation over the runs."""

    mean: np.ndarray
    sem: np.ndarray
    std: np.ndarray


def run_statistics(values: np.ndarray) -> RunStatistics:
    """:class:`RunStatistics` of ``values`` (optimizer, n, run)."""
    rows = [[np.asarray(row) for row in by_n] for by_n in values]
    table = lambda f: np.asarray([[float(f(row)) for row in by_n] for by_n in rows])  # noqa: E731
    return RunStatistics(table(np.mean), table(lambda row: np.std(row) / np.sqrt(row.size)),
                         table(np.std))


def recovered_fraction(values: np.ndarray, threshold: float) -> np.ndarray:
    """Per (optimizer, n): the fraction of runs with a value ≤ ``threshold`` (recovery)."""
    return np.asarray([[float(np.mean(row <= threshold)) for row in by_n] for by_n in values])


def sample_complexity(ns: list, mean_final: list, threshold: float) -> float:
    """n*: the smallest n whose mean final test loss is ≤ threshold (∞ when none)."""
    for n, value in zip(ns, mean_final):
        if value <= threshold:
            return float(n)
    return float("inf")


def mean_curves_table(steps: np.ndarray, mean_curve: np.ndarray, ns: Sequence[int],
                      quantity: str) -> dict:
    """The seed-mean curves of every optimizer and n against the step: columns ``step`` and
    ``<optimizer>_n<n>_mean_<quantity>`` (``mean_curve`` has shape (optimizers, n, steps))."""
    return {"step": np.asarray(steps).astype(float),
            **{f"{name}_n{n}_mean_{quantity}": mean_curve[o, i]
               for o, name in enumerate(OPTIMIZERS) for i, n in enumerate(ns)}}
