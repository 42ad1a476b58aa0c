"""Full-batch Adam on image classifiers: the sweeps of CKS Figures 4–6 (§6).

One sweep trains a classifier with full-batch Adam (CKS Def. 2.1, ε inside the root)

    θ⁽ⁿ⁺¹⁾ = θ⁽ⁿ⁾ − h·m̂⁽ⁿ⁺¹⁾/√(ν̂⁽ⁿ⁺¹⁾ + ε)      on  E(θ) = mean cross-entropy over the train set

for every value of ρ (β fixed) or of β (ρ fixed) and every seed, as ONE ``adabias.sweep``
program. Every epoch (= one step, the batch is the whole train set) it records E, the train
and test accuracy and the perturbed one-norm ‖∇E(θ)‖₁,ε = Σᵢ √((∇ᵢE)² + ε), the quantity the
bias term (2.3) penalizes (β ≥ ρ) or keeps from falling (ρ > β).

Precision: √(g² + ε) is well conditioned, and with ε = 1e−8 every entry contributes at least
√ε = 1e−4, so round-off in gradient entries below ~1e−4 is masked by the floor; a float32
network (``dtype``) therefore gives a usable norm. It is still summed in float64 (the
gradient cast up before squaring): the sums run over 10³–10⁶ entries and the differences
between settings compared in Figures 4–6 can be ~1 % of the norm. The quick settings train in
float64 throughout.

Sweeps are memoized by their :class:`SweepSpec` (what determines the training), so CKS
Figure 6 reuses the sweeps of Figures 4 and 5 when they run in the same process. The
settings the figures share are :class:`ClassifierSweepSettings` and :class:`ParameterSweep`;
the regime classifier and the regime rules are in :mod:`adabias.studies.regimes`.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

import adabias as ab
from adabias.measures import perturbed_one_norm
from adabias.problems import (DataIntegrityError, DataUnavailableError, accuracy,
                              cross_entropy_loss, load_cifar, load_digits)
from adabias.problems.classifiers import make_classifier

# --- settings -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RegimeCriteria:
    """Thresholds of the regime classifier (``regimes.classify_regime``)."""

    initial_fraction: float = 0.1  # spikes are looked for after this fraction of the epochs
    spike_factor: float = 10.0  # spikes: loss above this × its running minimum
    blowup_factor: float = 10.0  # divergence: loss above this × its initial value


@dataclasses.dataclass(frozen=True)
class RegimeRules:
    """The regime the claims are about, as thresholds on a run (``regimes.rule_checks``).

    R1: every EMA time scale 1/(1−β), 1/(1−ρ) of the sweep at most ``timescale_fraction`` of
    the epochs (the modified flow (2.2)–(2.3) describes Adam after the bias-correction
    start-up); R3: the train loss first drops below ``loss_threshold`` at least
    ``crossing_after_timescales`` time scales into training and within the first
    ``crossing_by_fraction`` of the epochs, and ‖∇E‖₁,ε at ``norm_epoch`` is at least
    ``norm_over_floor`` × p·√ε (still descending).
    """

    timescale_fraction: float = 0.1
    crossing_after_timescales: float = 2.0
    crossing_by_fraction: float = 0.5
    norm_over_floor: float = 5.0


@dataclasses.dataclass(frozen=True)
class ParameterSweep:
    """One sweep: ``swept`` ("rho" or "beta") takes ``values``, the other one is ``fixed``."""

    swept: str  # "rho" (β fixed) or "beta" (ρ fixed)
    values: tuple[float, ...]  # the values of the swept parameter
    fixed: float  # the value of the other parameter
    learning_rate: float  # h


# quick: scikit-learn digits (1347 train / 450 test, 8×8), an MLP 64-8-10, float64.
# R1: τ_max = 1/(1−0.99) = 100 epochs → 1000 epochs.
# R2: Figure 4 sweeps ρ ≥ β at β = 0.9 (coefficient (1+ρ)/(1−ρ) − (1+β)/(1−β) = 0…180 of (2.3)),
#     Figure 5 sweeps β < ρ at ρ = 0.99; both contain the point (β, ρ) = (0.9, 0.99).
# R4: h and width: the largest h in {1e-3, 3e-3, 1e-2, 3e-2} (the bias term is first order in
#     h) at which one run at (0.9, 0.99) meets R3 and is stable by the regime criteria, then
#     the widest hidden layer in {32, 16, 8} at that h: wider layers or larger h fit digits
#     before epoch 2·τ_max. At these β (≤ 0.95) the full-batch loss of this problem decreases
#     monotonically up to the spike regime, so "stable" is the classifier's stable regime
#     (no spikes, no divergence) with no loss oscillation.
# Figure 4 measures at epochs/4 (as the paper's 900 of 3600), Figure 5 at loss 0.1 (the paper's).
# Three seeds per setting: what the budget of the three figures allows.
@dataclasses.dataclass(frozen=True)
class ClassifierSweepSettings:
    """What the sweeps of CKS Figures 4–6 share: data, model, training, regimes (quick values)."""

    dataset: str = "digits"  # "digits" (scikit-learn, bundled) or "cifar10"
    model: str = "mlp"  # "mlp" or "cnn"
    widths: tuple[int, ...] = (8,)  # hidden layer widths (mlp) or conv channels (cnn)
    dtype: str = "float64"  # the network's dtype ("float32" or "float64")
    eps: float = 1e-8  # Adam's ε (inside the root) and the ε of ‖∇E‖₁,ε
    epochs: int = 1000  # full-batch steps
    num_seeds: int = 3  # initializations per setting
    regime: RegimeCriteria = RegimeCriteria()  # the regime classifier's thresholds
    rules: RegimeRules = RegimeRules()  # the regime the claims are about (R1, R3)
    norm_epoch: int = 250  # Figure 4 measures ‖∇E‖₁,ε here (epochs/4)
    loss_threshold: float = 0.1  # Figure 5 measures when the train loss first drops below it
    data_root: Optional[str] = None  # CIFAR-10 location (None: $ADABIAS_DATA or ~/.cache/adabias)
    download: bool = True  # fetch CIFAR-10 when it is not on disk
    train_size: Optional[int] = None  # keep the first images of the train set (None: all)
    test_size: Optional[int] = None  # keep the first images of the test set (None: all)


QUICK_SETTINGS = ClassifierSweepSettings()
QUICK_RHO_SWEEP = ParameterSweep("rho", (0.9, 0.95, 0.97, 0.98, 0.99), fixed=0.9,
                                 learning_rate=3e-3)
QUICK_BETA_SWEEP = ParameterSweep("beta", (0.5, 0.7, 0.8, 0.9, 0.95), fixed=0.99,
                                  learning_rate=3e-3)

# full: CIFAR-10 (first 10 000 train / 2000 test images: five vmapped members of the CNN
# fit one 80 GB GPU), a 2-layer CNN, float32 network (the norm in float64), on a GPU, with the
# paper's β = 0.99, ρ = 0.999 and its ρ, β ranges (R1 is not met for ρ ≥ 0.999: reported)
FULL_SETTINGS = ClassifierSweepSettings(
    dataset="cifar10", model="cnn", widths=(16, 32), dtype="float32", eps=1e-8, epochs=3000,
    num_seeds=1, norm_epoch=750, loss_threshold=0.1, data_root=None, download=True,
    train_size=10000, test_size=2000)
FULL_RHO_SWEEP = ParameterSweep("rho", (0.99, 0.995, 0.999, 0.9995, 0.9999), fixed=0.99,
                                learning_rate=1e-3)
FULL_BETA_SWEEP = ParameterSweep("beta", (0.8, 0.9, 0.95, 0.97, 0.99), fixed=0.999,
                                 learning_rate=1e-3)


# --- data ---------------------------------------------------------------------------------


class ImageData(NamedTuple):
    """Standardized images (N, H, W, C) and int labels of a train and a test set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _standardize(x_train: np.ndarray, x_test: np.ndarray, axes: tuple) -> tuple:
    """(x − mean)/std with mean and std of the train set over ``axes`` (std 0 → 1)."""
    mean = x_train.mean(axis=axes, keepdims=True)
    std = x_train.std(axis=axes, keepdims=True)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def _subset(x: np.ndarray, y: np.ndarray, size: Optional[int]) -> tuple:
    return (x, y) if size is None else (x[:size], y[:size])


def prepare_data(dataset: str, *, data_root: Optional[str] = None, download: bool = True,
                 train_size: Optional[int] = None, test_size: Optional[int] = None,
                 split_seed: int = 0) -> ImageData:
    """The train and test sets of ``dataset``, standardized with the train statistics.

    ``"digits"``: scikit-learn's 8×8 digits (bundled), a stratified 75/25 split, each pixel
    standardized. ``"cifar10"``: CIFAR-10 from ``data_root`` (default ``$ADABIAS_DATA`` or
    ``~/.cache/adabias``), fetched from the official URL when absent and ``download``; each
    channel standardized. ``train_size``/``test_size`` keep the first images (None: all).
    Raises ``RuntimeError`` saying so when CIFAR-10 is neither on disk nor downloadable.
    """
    if dataset == "digits":
        x_tr, y_tr, x_te, y_te = load_digits(0.25, split_seed)
        axes: tuple = (0,)
    elif dataset == "cifar10":
        try:
            x_tr, y_tr, x_te, y_te = load_cifar("cifar10", root=data_root, download=download)
        except DataIntegrityError:  # corrupt data: its own message names the file
            raise
        except DataUnavailableError as error:  # not found offline, download failed
            raise RuntimeError(
                f"CIFAR-10 is not available offline and could not be obtained ({error}). "
                "Put the official binary archive cifar-10-binary.tar.gz or its extracted "
                "cifar-10-batches-bin/ under the data root (setting data_root, or the "
                "environment variable ADABIAS_DATA), or run with internet access."
            ) from error
        x_tr, x_te = x_tr.astype(np.float64) / 255.0, x_te.astype(np.float64) / 255.0
        axes = (0, 1, 2)
    else:
        raise ValueError(f"dataset must be 'digits' or 'cifar10', got dataset={dataset!r}")
    if train_size is not None and train_size < 1:
        raise ValueError(f"train_size must be positive or None, got train_size={train_size!r}")
    if test_size is not None and test_size < 1:
        raise ValueError(f"test_size must be positive or None, got test_size={test_size!r}")
    x_tr, y_tr = _subset(x_tr, y_tr, train_size)
    x_te, y_te = _subset(x_te, y_te, test_size)
    x_tr, x_te = _standardize(x_tr, x_te, axes)
    return ImageData(x_tr, y_tr, x_te, y_te)


# --- one sweep ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """Everything that determines a sweep (hashable: the memo key).

    ``swept`` is ``"rho"`` (ρ takes ``values``, β = ``fixed``) or ``"beta"`` (β takes
    ``values``, ρ = ``fixed``).
    """

    dataset: str
    model: str
    widths: tuple
    learning_rate: float
    eps: float
    swept: str
    values: tuple
    fixed: float
    epochs: int
    num_seeds: int
    dtype: str = "float64"
    data_root: Optional[str] = None
    download: bool = True
    train_size: Optional[int] = None
    test_size: Optional[int] = None

    def __post_init__(self):
        if self.swept not in ("rho", "beta"):
            raise ValueError(f"swept must be 'rho' or 'beta', got swept={self.swept!r}")
        if len(self.values) < 1:
            raise ValueError("values must name at least one value of the swept parameter")
        if self.epochs < 1:
            raise ValueError(f"epochs must be positive, got epochs={self.epochs!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got dtype={self.dtype!r}")

    @property
    def fixed_name(self) -> str:
        return "beta" if self.swept == "rho" else "rho"


def sweep_spec(settings: ClassifierSweepSettings, sweep: ParameterSweep) -> SweepSpec:
    """The :class:`SweepSpec` of one sweep: the shared ``settings`` and the sweep's own."""
    return SweepSpec(
        dataset=settings.dataset, model=settings.model, widths=tuple(settings.widths),
        learning_rate=float(sweep.learning_rate), eps=float(settings.eps),
        swept=sweep.swept, values=tuple(float(v) for v in sweep.values),
        fixed=float(sweep.fixed), epochs=int(settings.epochs),
        num_seeds=int(settings.num_seeds), dtype=settings.dtype,
        data_root=settings.data_root, download=bool(settings.download),
        train_size=settings.train_size, test_size=settings.test_size,
    )


class SweepCurves(NamedTuple):
    """Per-epoch records of a sweep; arrays of shape (values, seeds, epochs + 1) or (values, seeds)."""

    spec: SweepSpec
    values: np.ndarray
    loss: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    norm: np.ndarray  # ‖∇E‖₁,ε
    diverged_at: np.ndarray  # the engine's mark: first non-finite step, −1 when none
    seconds: float  # training time, compile included
    num_params: int  # p

    @property
    def norm_floor(self) -> float:
        """p·√ε, the value of ‖∇E‖₁,ε at a zero gradient (p parameters)."""
        return float(self.num_params * np.sqrt(self.spec.eps))

    @property
    def epochs(self) -> np.ndarray:
        return np.arange(self.loss.shape[-1])


def _float64_norm(grads: Any, eps: float) -> jax.Array:
    """‖g‖₁,ε evaluated in float64 (when enabled) whatever the dtype of g."""
    wide = jnp.result_type(float)
    return perturbed_one_norm(jax.tree.map(lambda g: g.astype(wide), grads), eps)


def _train(spec: SweepSpec, progress: bool) -> SweepCurves:
    if spec.dtype == "float64" and not jax.config.jax_enable_x64:
        raise RuntimeError("dtype='float64' needs jax.config.update('jax_enable_x64', True)")
    data = prepare_data(spec.dataset, data_root=spec.data_root, download=spec.download,
                        train_size=spec.train_size, test_size=spec.test_size)
    dtype = jnp.dtype(spec.dtype)
    x_train, x_test = jnp.asarray(data.x_train, dtype), jnp.asarray(data.x_test, dtype)
    y_train, y_test = jnp.asarray(data.y_train), jnp.asarray(data.y_test)
    num_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    init, apply = make_classifier(spec.model, spec.widths, data.x_train.shape[1:], num_classes,
                                  dtype)

    def loss_fn(params):
        return cross_entropy_loss(apply(params, x_train), y_train)

    metrics = {
        "norm": lambda params: _float64_norm(jax.grad(loss_fn)(params), spec.eps),
        "train_accuracy": lambda params: accuracy(apply(params, x_train), y_train),
        "test_accuracy": lambda params: accuracy(apply(params, x_test), y_test),
    }
    h, eps, fixed = spec.learning_rate, spec.eps, spec.fixed
    if spec.swept == "rho":
        make_optimizer = lambda rho: ab.optim.adam(h, fixed, rho, eps)  # noqa: E731
    else:
        make_optimizer = lambda beta: ab.optim.adam(h, beta, fixed, eps)  # noqa: E731
    start = time.perf_counter()
    result = ab.sweep(make_optimizer, loss_fn, None, spec.epochs, grid={spec.swept: spec.values},
                      init_params=init,
                      num_seeds=spec.num_seeds, save_params=False, metrics=metrics,
                      progress=progress)
    traj = result.trajectory
    jax.block_until_ready(traj.loss)
    seconds = time.perf_counter() - start
    shape = result.grid_shape  # (values, seeds)
    as_grid = lambda x: np.asarray(x, dtype=np.float64).reshape(shape + (-1,))  # noqa: E731
    return SweepCurves(
        spec=spec, values=np.asarray(spec.values), loss=as_grid(traj.loss),
        train_accuracy=as_grid(traj.metrics["train_accuracy"]),
        test_accuracy=as_grid(traj.metrics["test_accuracy"]),
        norm=as_grid(traj.metrics["norm"]),
        diverged_at=np.asarray(traj.diverged_at).reshape(shape), seconds=seconds,
        num_params=sum(int(np.prod(x.shape)) for x in jax.tree.leaves(jax.eval_shape(
            init, jax.random.key(0)))),
    )


_MEMO: "OrderedDict[SweepSpec, SweepCurves]" = OrderedDict()
_MEMO_SIZE = 4


def classifier_sweep(spec: SweepSpec, *, progress: bool = False) -> SweepCurves:
    """The curves of ``spec``'s sweep, trained once per process (memoized by ``spec``)."""
    if spec in _MEMO:
        _MEMO.move_to_end(spec)
        return _MEMO[spec]
    curves = _train(spec, progress)
    _MEMO[spec] = curves
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return curves


def clear_memo() -> None:
    """Forget the memoized sweeps."""
    _MEMO.clear()


# --- per-run summaries --------------------------------------------------------------------


def seed_mean(x: np.ndarray) -> np.ndarray:
    """Mean over the seed axis (axis 1)."""
    return np.asarray(x).mean(axis=1)


def curve_table(curves: SweepCurves, per_epoch: np.ndarray, prefix: str) -> dict:
    """Seed-mean curves against epoch: columns ``epoch`` and ``<prefix>_<swept><value>``."""
    table = {"epoch": curves.epochs}
    for value, row in zip(curves.values, seed_mean(per_epoch)):
        table[f"{prefix}_{curves.spec.swept}{value:g}"] = row
    return table
