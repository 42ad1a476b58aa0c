"""Training with label noise (LWL): many copies of a model as one ``ab.sweep``.

Label noise y ← y + δξ (ξ uniform on {−1, +1}, fresh at every step) on one full batch makes
SGD and the adaptive methods drift along the manifold Γ of interpolators, each reducing its own
sharpness measure: tr(H) for SGD, tr(Diag(H)^{1/2}) for Adam, tr(Diag(H)^{1−λ}) for AdamE-λ
(LWL; DESIGN §3.5). Every LWL training experiment runs through
:func:`train`: one compiled program for a grid of hyperparameters × seeds. This module also
holds what the diagonal-net experiments share: their settings block
(:class:`DiagonalNetLabelNoise`), the two optimizers compared (:func:`optimizer_factories`),
several optimizers on the same label draws (:func:`side_by_side`) and the test "the measure
decreased after the loss became small" (:func:`measure_drop`).
"""

from __future__ import annotations

import dataclasses
import functools
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adabias as ab
from adabias.optim import agm, diagonal, gd, inverse_root
from adabias.problems.diagonal_net import diagonal_net_loss, init_diagonal_net, sparse_regression_data
from adabias.problems.noise import label_noise
from adabias.studies.curves import first_index_below

__all__ = [
    "DiagonalNetLabelNoise",
    "MeasureDrop",
    "diagonal_net_data",
    "label_draws",
    "measure_drop",
    "noise",
    "optimizer_factories",
    "seed_mean",
    "side_by_side",
    "summed_loss",
    "toward_authors_scale",
    "train",
    "train_diagonal_net",
]


@functools.lru_cache(maxsize=None)
def noise(delta: float) -> Callable:
    """:func:`~adabias.problems.label_noise` for δ, one function per δ (so one compiled program)."""
    return label_noise(delta)


def train(make_optimizer: Callable[..., optax.GradientTransformation], loss_fn: Callable,
          params0: Any, batch: Mapping[str, jax.Array], *, delta: float,
          grid: Mapping[str, Sequence[float]], num_steps: int, num_seeds: int, save_every: int,
          key: jax.Array, metrics: Mapping[str, Callable] = MappingProxyType({}),
          save_params: bool = True, progress: bool = False,
          init_params: Optional[Callable[[jax.Array], Any]] = None,
          noise_fn: Optional[Callable] = None) -> ab.engine.SweepResult:
    """Every point of ``grid`` × ``num_seeds`` seeds trained on the full ``batch`` with label noise δ.

    One ``ab.sweep`` (the batch is the only one of the run). Seed s draws its labels, and its
    start when ``params0`` is None and ``init_params(key)`` is given, from key fold_in(``key``, s).
    ``noise_fn(key, batch) -> batch`` replaces the ±δ label noise when given (e.g. Gaussian).
    """
    return ab.sweep(make_optimizer, loss_fn, params0, num_steps, grid=grid, init_params=init_params,
                    num_seeds=num_seeds,
                    key=key, batches=jax.tree.map(lambda x: x[None], batch),
                    noise=noise(delta) if noise_fn is None else noise_fn,
                    save_every=save_every, metrics=metrics, save_params=save_params,
                    progress=progress)


def label_draws(batch: Mapping[str, jax.Array], *, delta: float, key: jax.Array,
                num_steps: int) -> np.ndarray:
    """The labels ``ab.run(..., noise=noise(δ), key=key)`` trains on at steps 0 … K−1 (rows).

    The engine perturbs step k's batch with noise(fold_in(key, k), batch).
    """
    draw = noise(delta)
    return np.asarray(jax.vmap(lambda k: draw(jax.random.fold_in(key, k), batch)["y"])(jnp.arange(num_steps)))


def side_by_side(optimizers: Mapping[str, optax.GradientTransformation]) -> optax.GradientTransformation:
    """Several optimizers at once on params {name: params_name}, each on its own copy.

    With :func:`summed_loss` every copy receives exactly its own gradient, so the copies evolve
    as separate runs that share the label-noise draws (one compiled program).
    """

    def init_fn(params):
        return {name: optimizer.init(params[name]) for name, optimizer in optimizers.items()}

    def update_fn(updates, state, params=None):
        out = {name: optimizer.update(updates[name], state[name], None if params is None else params[name])
               for name, optimizer in optimizers.items()}
        return {name: o[0] for name, o in out.items()}, {name: o[1] for name, o in out.items()}

    return optax.GradientTransformation(init_fn, update_fn)


def summed_loss(loss_fn: Callable) -> Callable:
    """Σ_c loss_fn(params_c, batch) over the copies {c: params_c}: copy c's gradient is ∇L(params_c)."""

    def loss(params: Mapping[str, Any], batch: Any) -> jax.Array:
        return sum(loss_fn(p, batch) for p in params.values())

    return loss


def optimizer_factories(*, beta1: float, beta2: float, eps: float) -> dict[str, Callable]:
    """``make_optimizer(learning_rate)`` for LWL's Adam (the AGM with V = diag, S = 1/(√v + ε):
    no bias correction, ε outside the root) and for SGD, keyed "adam" and "sgd"."""
    return {
        "adam": lambda learning_rate: agm(learning_rate, beta1, beta2, diagonal, inverse_root(eps)),
        "sgd": lambda learning_rate: gd(learning_rate),
    }


def seed_mean(values: Any, grid_shape: tuple) -> np.ndarray:
    """Per-member records (member, record) of a sweep, averaged over the seeds: (grid..., record)."""
    return np.asarray(values).reshape(tuple(grid_shape) + (-1,)).mean(axis=len(grid_shape) - 1)


class MeasureDrop(NamedTuple):
    """A measure along training, before and after the loss became small (seed means)."""

    start: int  # first record with loss ≤ the threshold; −1 when there is none
    at_start: float  # the measure at that record (NaN when there is none)
    late: float  # the measure's mean over the last records

    @property
    def decreased(self) -> bool:
        """The loss became small and the measure ended below its value at that record."""
        return self.start >= 0 and self.late < self.at_start

    def numbers(self, steps: np.ndarray) -> dict:
        return {"at_that_step": self.at_start, "late_mean": self.late,
                "step_loss_small": int(steps[self.start]) if self.start >= 0 else None}

    def reason(self, measure: str, small_loss: float) -> str:
        """Why the measure did not drop, in words ("" when it did)."""
        if self.decreased:
            return ""
        if self.start < 0:
            return f"the seed-mean loss never reached {small_loss:g}, so there is no start to compare with"
        return (f"{measure}: late mean {self.late:.6g} is not below {self.at_start:.6g}, its value when the "
                f"loss first reached {small_loss:g}")


def measure_drop(measure: np.ndarray, loss: np.ndarray, *, small_loss: float,
                 last_records: int) -> MeasureDrop:
    """Where the loss first falls to ``small_loss`` (≤), the measure there, and its late mean."""
    start = first_index_below(loss, small_loss, or_equal=True)
    return MeasureDrop(start, float(measure[start]) if start >= 0 else float("nan"),
                       float(measure[-last_records:].mean()))


# --- the diagonal net with label noise (lwl.sharpness, lwl.adame) --------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiagonalNetLabelNoise:
    """The diagonal-net problem and training that LWL's sharpness experiments share.

    Gaussian features, w* = first k coordinates equal to 1; n = 5 < 2k·log(d/k) with data seed 0
    (chosen with a linear program) so that the minimizer of tr(H) on Γ (weighted ℓ₁) is not the
    sparse w*: the measures of SGD and Adam have different minimizers.
    """

    d: int = 10  # dimension of u, v and w
    n: int = 5  # number of samples
    k: int = 2  # non-zeros of w*
    data_seed: int = 0  # key of the data draw
    delta: float = 0.5  # label noise y ← y + δξ
    init_scale: float = 0.5  # u = v = init_scale·g at the start
    adam_learning_rate: float = 0.004  # η of Adam (AGM form)
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    num_steps: int = 40_000
    save_every: int = 1_000  # steps between records
    num_seeds: int = 2  # label-noise draws per optimizer
    small_loss: float = 1e-2  # "the loss is small": first record with seed-mean loss ≤ this
    last_records: int = 5  # "late": mean over this many last records


S = TypeVar("S", bound=DiagonalNetLabelNoise)


def toward_authors_scale(settings: S) -> S:
    """The settings toward the authors' scale (d = 100, 10⁶ steps, init 0.1·g); n = 15 <
    2k·log(d/k), so that the minimizer of tr(H) on Γ (weighted ℓ₁) is not the sparse w* and
    the two measures part."""
    return dataclasses.replace(settings, d=100, n=15, k=5, init_scale=0.1, num_steps=1_000_000,
                               save_every=20_000, num_seeds=4, adam_learning_rate=0.002)


def diagonal_net_data(settings: DiagonalNetLabelNoise) -> tuple[dict, jax.Array]:
    """The batch {"z", "y"} (Gaussian features) and w*."""
    return sparse_regression_data(jax.random.key(settings.data_seed), settings.n, settings.d,
                                  settings.k, features="gaussian")


def train_diagonal_net(settings: DiagonalNetLabelNoise, batch: Mapping[str, jax.Array],
                       make_optimizer: Callable[..., optax.GradientTransformation], *,
                       grid: Mapping[str, Sequence[float]], metrics: Mapping[str, Callable],
                       progress: bool = False) -> ab.engine.SweepResult:
    """:func:`train` of the diagonal net from u = v = init_scale·g (g drawn with key 1), label
    noise from key 2, the metrics recorded and not the parameters."""
    params0 = init_diagonal_net(jax.random.key(1), settings.d, settings.init_scale)
    return train(make_optimizer, diagonal_net_loss, params0, batch, delta=settings.delta, grid=grid,
                 num_steps=settings.num_steps, num_seeds=settings.num_seeds,
                 save_every=settings.save_every, key=jax.random.key(2), metrics=metrics,
                 save_params=False, progress=progress)
