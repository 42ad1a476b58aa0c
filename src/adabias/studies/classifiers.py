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
import os
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
# Seeds: 7 paired initializations (the sign test's floor, 2⁻⁷ < 0.01). Earlier quick runs
# (3 seeds) measured the norm at epoch 250 as 0.29 (ρ = 0.9) and 0.98 (ρ = 0.99) with a
# seed scatter near 10 %: seeds_needed(0.69, 0.1) = 7. Only Figure 4 sweeps at the quick
# tier, over ρ ∈ {0.9, 0.99} (the paired comparison needs the two ends).
@dataclasses.dataclass(frozen=True)
class ClassifierSweepSettings:
    """What the sweeps of CKS Figures 4–6 share: data, model, training, regimes (quick values)."""

    dataset: str = "digits"  # "digits" (scikit-learn, bundled) or "cifar10"
    model: str = "mlp"  # "mlp" or "cnn"
    widths: tuple[int, ...] = (8,)  # hidden layer widths (mlp) or conv channels (cnn)
    dtype: str = "float64"  # the network's dtype ("float32" or "float64")
    eps: float = 1e-8  # Adam's ε (inside the root) and the ε of ‖∇E‖₁,ε
    epochs: int = 1000  # full-batch steps
    num_seeds: int = 7  # initializations per setting
    regime: RegimeCriteria = RegimeCriteria()  # the regime classifier's thresholds
    rules: RegimeRules = RegimeRules()  # the regime the claims are about (R1, R3)
    norm_epoch: int = 250  # Figure 4 measures ‖∇E‖₁,ε here (epochs/4)
    loss_threshold: float = 0.1  # Figure 5 measures when the train loss first drops below it
    data_root: Optional[str] = None  # CIFAR-10 location (None: $ADABIAS_DATA or ~/.cache/adabias)
    download: bool = True  # fetch CIFAR-10 when it is not on disk
    train_size: Optional[int] = None  # keep the first images of the train set (None: all)
    test_size: Optional[int] = None  # keep the first images of the test set (None: all)
    downsample: int = 1  # average-pool images over downsample × downsample blocks
    checkpoint_dir: Optional[str] = None  # sweeps save their state here and resume (None: off)
    chunk: Optional[int] = None  # evaluate the full-batch loss over chunks of this many images


QUICK_SETTINGS = ClassifierSweepSettings()
QUICK_RHO_SWEEP = ParameterSweep("rho", (0.9, 0.99), fixed=0.9, learning_rate=3e-3)

# medium (CPU, real data; DESIGN §4.4 "CKS"): CIFAR-10 as load_cifar finds it (the first 1000
# train and 1000 test images: the 5000-image subset here has them, the full set too), channels
# standardized, 4×4 average pooling to 8×8×3, an MLP 192-256-10 (ReLU, float32; the norms in
# float64), full batch, the paper's h, β, ρ, ε and epochs (Figure 4: norm at epoch 900, best
# test accuracy over 3600 epochs), 8 paired seeds (initializations) per setting. Three values
# per sweep (the smallest and the largest are the paired comparison; the middle one is data).
# Scale gap: the paper trains ResNet-50/101 on 50 000 full-size images. Measured here: 72 runs
# × 3600 epochs in about 20 min on 2 cores (docs/full_runs.md).
MEDIUM_SETTINGS = ClassifierSweepSettings(
    dataset="cifar10", model="mlp", widths=(256,), dtype="float32", eps=1e-8, epochs=3600,
    num_seeds=8, norm_epoch=900, loss_threshold=0.1, data_root=None, download=True,
    train_size=1000, test_size=1000, downsample=4)
MEDIUM_RHO_SWEEP = ParameterSweep("rho", (0.99, 0.995, 0.999), fixed=0.99, learning_rate=7.5e-5)
MEDIUM_BETA_SWEEP = ParameterSweep("beta", (0.9, 0.95, 0.99), fixed=0.999, learning_rate=1e-4)
# Figure 6 right: ρ swept at β = 0.97 (the paper: CIFAR-100; CIFAR-10 where CIFAR-100 is absent)
MEDIUM_RHO_SWEEP_FIG6 = ParameterSweep("rho", (0.98, 0.99, 0.999), fixed=0.97,
                                       learning_rate=1e-4)

# full (GPU): the paper's scale — all of CIFAR-10, the authors' 6-conv CNN (problems.vision;
# ResNet-50/101 and a SimpleViT are models "resnet50", "resnet101", "vit"), float32 network,
# full batch (the loss summed over chunks of the train set), 3600 epochs, the paper's β, ρ,
# checkpointed (``checkpoint_dir``) so a stopped run resumes.
FULL_SETTINGS = ClassifierSweepSettings(
    dataset="cifar10", model="cks_cnn", widths=(32, 32, 64, 64, 128, 128, 512),
    dtype="float32", eps=1e-8, epochs=3600, num_seeds=8, norm_epoch=900, loss_threshold=0.1,
    data_root=None, download=True, train_size=None, test_size=None, downsample=1, chunk=1000,
    checkpoint_dir="adabias-checkpoints")
FULL_RHO_SWEEP = ParameterSweep("rho", (0.99, 0.995, 0.999, 0.9995, 0.9999), fixed=0.99,
                                learning_rate=7.5e-5)
FULL_BETA_SWEEP = ParameterSweep("beta", (0.9, 0.95, 0.97, 0.99), fixed=0.999,
                                 learning_rate=1e-4)
FULL_RHO_SWEEP_FIG6 = ParameterSweep("rho", (0.98, 0.99, 0.995, 0.999), fixed=0.97,
                                     learning_rate=1e-4)


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


def downsample_images(x: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` × ``factor`` pixel blocks of images (N, H, W, C) (H, W divisible)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"downsample must be a positive integer, got downsample={factor!r}")
    n, height, width, channels = x.shape
    if height % factor or width % factor:
        raise ValueError(f"downsample={factor} must divide the image size {height}×{width}")
    return x.reshape(n, height // factor, factor, width // factor, factor, channels).mean(
        axis=(2, 4))


def prepare_data(dataset: str, *, data_root: Optional[str] = None, download: bool = True,
                 train_size: Optional[int] = None, test_size: Optional[int] = None,
                 split_seed: int = 0, downsample: int = 1) -> ImageData:
    """The train and test sets of ``dataset``, standardized with the train statistics.

    ``"digits"``: scikit-learn's 8×8 digits (bundled), a stratified 75/25 split, each pixel
    standardized. ``"cifar10"``: CIFAR-10 from ``data_root`` (default ``$ADABIAS_DATA`` or
    ``~/.cache/adabias``), fetched from the official URL when absent and ``download``; each
    channel standardized (no augmentation). ``train_size``/``test_size`` keep the first images
    (None: all); ``downsample`` > 1 averages pixel blocks first (:func:`downsample_images`).
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
    if downsample != 1:
        x_tr, x_te = downsample_images(x_tr, downsample), downsample_images(x_te, downsample)
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
    downsample: int = 1
    checkpoint: Optional[str] = None  # a file: the sweep saves its state there and resumes
    chunk: Optional[int] = None  # full-batch loss summed over chunks (None: one forward pass)

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
        downsample=int(settings.downsample), chunk=settings.chunk,
        checkpoint=None if settings.checkpoint_dir is None else os.path.join(
            settings.checkpoint_dir, f"cks-{settings.dataset}-{settings.model}-{sweep.swept}-"
            f"{sweep.fixed:g}-h{sweep.learning_rate:g}.ckpt"),
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
    norm_l1: Optional[np.ndarray] = None  # ‖∇E‖₁ (same shape as norm)
    norm_l2: Optional[np.ndarray] = None  # ‖∇E‖₂

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


def gradient_norms(grads: Any, eps: float) -> jax.Array:
    """[‖g‖₁,ε, ‖g‖₁, ‖g‖₂] of a gradient pytree, in float64 (when enabled) whatever its dtype:
    ‖g‖₁,ε = Σᵢ √(gᵢ² + ε) (with the optimizer's ε), ‖g‖₁ = Σᵢ |gᵢ|, ‖g‖₂ = √(Σᵢ gᵢ²)."""
    wide = jnp.result_type(float)
    flat = [g.astype(wide).ravel() for g in jax.tree.leaves(grads)]
    one = sum(jnp.sum(jnp.abs(g)) for g in flat)
    two = jnp.sqrt(sum(jnp.sum(g * g) for g in flat))
    return jnp.stack([_float64_norm(grads, eps), one, two])


def _train(spec: SweepSpec, progress: bool) -> SweepCurves:
    if spec.dtype == "float64" and not jax.config.jax_enable_x64:
        raise RuntimeError("dtype='float64' needs jax.config.update('jax_enable_x64', True)")
    data = prepare_data(spec.dataset, data_root=spec.data_root, download=spec.download,
                        train_size=spec.train_size, test_size=spec.test_size,
                        downsample=spec.downsample)
    dtype = jnp.dtype(spec.dtype)
    x_train, x_test = jnp.asarray(data.x_train, dtype), jnp.asarray(data.x_test, dtype)
    y_train, y_test = jnp.asarray(data.y_train), jnp.asarray(data.y_test)
    num_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    init, apply = make_classifier(spec.model, spec.widths, data.x_train.shape[1:], num_classes,
                                  dtype)

    if spec.chunk is None:
        def loss_fn(params):  # Σ of per-sample losses over the train set / N (the mean)
            return cross_entropy_loss(apply(params, x_train), y_train)

        def accuracy_on(params, x, y):
            return accuracy(apply(params, x), y)
    else:
        from adabias.problems.vision import full_batch_accuracy, full_batch_loss

        def loss_fn(params):  # the same sum, chunk by chunk
            return full_batch_loss(apply, params, x_train, y_train, spec.chunk)

        def accuracy_on(params, x, y):
            return full_batch_accuracy(apply, params, x, y, spec.chunk)

    # metrics at θ⁽ⁿ⁾, i.e. before step n + 1: the gradient that step uses
    metrics = {
        "norms": lambda params: gradient_norms(jax.grad(loss_fn)(params), spec.eps),
        "train_accuracy": lambda params: accuracy_on(params, x_train, y_train),
        "test_accuracy": lambda params: accuracy_on(params, x_test, y_test),
    }
    h, eps, fixed = spec.learning_rate, spec.eps, spec.fixed
    if spec.swept == "rho":
        make_optimizer = lambda rho: ab.optim.adam(h, fixed, rho, eps)  # noqa: E731
    else:
        make_optimizer = lambda beta: ab.optim.adam(h, beta, fixed, eps)  # noqa: E731
    if spec.checkpoint is not None:
        os.makedirs(os.path.dirname(os.path.abspath(spec.checkpoint)), exist_ok=True)
    start = time.perf_counter()
    result = ab.sweep(make_optimizer, loss_fn, None, spec.epochs, grid={spec.swept: spec.values},
                      init_params=init,
                      num_seeds=spec.num_seeds, save_params=False, metrics=metrics,
                      progress=progress, checkpoint=spec.checkpoint)
    traj = result.trajectory
    jax.block_until_ready(traj.loss)
    seconds = time.perf_counter() - start
    shape = result.grid_shape  # (values, seeds)
    as_grid = lambda x: np.asarray(x, dtype=np.float64).reshape(shape + (-1,))  # noqa: E731
    norms = np.asarray(traj.metrics["norms"], np.float64).reshape(shape + (-1, 3))
    return SweepCurves(
        spec=spec, values=np.asarray(spec.values), loss=as_grid(traj.loss),
        train_accuracy=as_grid(traj.metrics["train_accuracy"]),
        test_accuracy=as_grid(traj.metrics["test_accuracy"]),
        norm=norms[..., 0],
        diverged_at=np.asarray(traj.diverged_at).reshape(shape), seconds=seconds,
        num_params=sum(int(np.prod(x.shape)) for x in jax.tree.leaves(jax.eval_shape(
            init, jax.random.key(0)))),
        norm_l1=norms[..., 1], norm_l2=norms[..., 2],
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


# --- Adam against its modified flow (2.2)–(2.3) on a classifier ---------------------------------
#
# The theory behind Figures 4–6: on t = n·h, full-batch Adam tracks the flow
#     θ̇_j = −(∇_jE + bias_j)/√(∇_jE² + ε),
#     bias_j = (h/2){(1+β)/(1−β) − (1+ρ)/(1−ρ) + (1+ρ)/(1−ρ)·ε/(∇_jE² + ε)} ∇_j‖∇E‖₁,ε
# to O(h²), while the settings differ only through the bias term, by O(h). The flow's order of
# ‖∇E‖₁,ε over β (ρ fixed) and over ρ (β fixed) is therefore the theory's prediction for
# Adam's wherever the tracking error is small next to the gaps between settings.
#
# Quick values, chosen before the claims were decided: digits (the first 300 train images of
# the quick split), an MLP 64-8-10 with tanh (smooth: the flow contains the Hessian; with ReLU
# the adaptive solver stalls at every activation kink), float64, ε = 1e-4. The first-order
# expansion needs the EMA window h/(1−ρ) short next to the time in which ∇E/√(∇E² + ε)
# changes, ~√ε/‖H‖: measured on this model, ρ = 0.99 with h = 1e-4 leaves a tracking error
# ten times the gaps between β (undecidable), so ρ ≤ 0.97 and h = 5e-5 (h·ρ/(1−ρ) ≤ 1.6e-3,
# h·β/(1−β) ≤ 1e-3). With ε = 1e-6 or 1e-8 the flow is stiff (the gradient entries that
# cross zero turn at rate 1/√ε) and one solve takes minutes. β is swept where the coefficient
# (1+β)/(1−β) − (1+ρ)/(1−ρ) moves from −30 to 0 (ρ = 0.95), ρ where it moves from 0 to −47
# (β = 0.9); both sweeps contain (β, ρ) = (0.9, 0.95).


@dataclasses.dataclass(frozen=True)
class FlowComparisonSettings:
    """Full-batch Adam and its modified flow (2.2)–(2.3) from one start, for several (β, ρ)."""

    dataset: str = "digits"
    widths: tuple[int, ...] = (8,)
    activation: str = "tanh"  # smooth: the flow contains the Hessian
    train_size: Optional[int] = 300
    eps: float = 1e-4  # Adam's ε and the ε of ‖∇E‖₁,ε
    learning_rate: float = 5e-5  # h
    num_steps: int = 2000  # Adam steps; the flow is compared at t = n·h
    num_times: int = 10  # saved times t_k = k·(num_steps/num_times)·h, k = 0 … num_times
    beta_values: tuple[float, ...] = (0.8, 0.9, 0.93, 0.95)  # swept at rho_fixed
    rho_fixed: float = 0.95
    rho_values: tuple[float, ...] = (0.9, 0.93, 0.95, 0.97)  # swept at beta_fixed
    beta_fixed: float = 0.9
    seed: int = 0  # the start θ⁽⁰⁾ (one start: the prediction is deterministic)
    error_fraction: float = 1 / 3  # decided where tracking error ≤ this × the smallest gap
    rtol: float = 1e-9  # the flow's solver tolerances (far below the O(h²) tracking error)
    atol: float = 1e-11

    def __post_init__(self):
        if self.num_steps < 1 or self.num_times < 1 or self.num_steps % self.num_times:
            raise ValueError("num_steps must be a positive multiple of num_times, got "
                             f"num_steps={self.num_steps!r}, num_times={self.num_times!r}")
        if len(self.beta_values) < 2 or len(self.rho_values) < 2:
            raise ValueError("beta_values and rho_values need at least two values each")
        for name in ("beta_values", "rho_values"):
            values = getattr(self, name)
            if list(values) != sorted(set(values)):
                raise ValueError(f"{name} must be strictly increasing, got {values!r}")

    def members(self) -> tuple[tuple[float, float], ...]:
        """The distinct (β, ρ) pairs: the β sweep, then the ρ sweep (shared pairs once)."""
        pairs = [(float(b), float(self.rho_fixed)) for b in self.beta_values]
        pairs += [(float(self.beta_fixed), float(r)) for r in self.rho_values]
        return tuple(dict.fromkeys(pairs))


class FlowComparison(NamedTuple):
    """‖∇E‖₁,ε of Adam and of its flow at the saved times, per member (β, ρ)."""

    settings: FlowComparisonSettings
    beta: np.ndarray  # (members,)
    rho: np.ndarray  # (members,)
    steps: np.ndarray  # (times,): n at the saved times (t = n·h)
    adam_norm: np.ndarray  # (members, times): ‖∇E(θ⁽ⁿ⁾)‖₁,ε
    flow_norm: np.ndarray  # (members, times): ‖∇E(θ(n·h))‖₁,ε
    adam_loss: np.ndarray  # (members, times)
    first_order_ratio: np.ndarray  # (members,): ‖correction‖/‖leading‖ of the flow at θ⁽⁰⁾
    seconds: float  # Adam and flow, compile included
    num_params: int

    @property
    def times(self) -> np.ndarray:
        return self.steps * self.settings.learning_rate

    def sweep(self, swept: str) -> tuple[np.ndarray, np.ndarray]:
        """(values, member indices) of the β sweep (``"beta"``) or the ρ sweep (``"rho"``)."""
        s = self.settings
        if swept == "beta":
            values, key = s.beta_values, lambda v: (v, s.rho_fixed)
        elif swept == "rho":
            values, key = s.rho_values, lambda v: (s.beta_fixed, v)
        else:
            raise ValueError(f"swept must be 'beta' or 'rho', got {swept!r}")
        pairs = list(zip(self.beta.tolist(), self.rho.tolist()))
        return np.asarray(values, float), np.asarray([pairs.index(key(float(v))) for v in values])


def _flow_comparison(settings: FlowComparisonSettings) -> FlowComparison:
    if not jax.config.jax_enable_x64:
        raise RuntimeError("the flow comparison needs jax.config.update('jax_enable_x64', True)")
    from adabias import flows
    from adabias.flows.regime import first_order_ratio

    data = prepare_data(settings.dataset, train_size=settings.train_size, download=False)
    x, y = jnp.asarray(data.x_train, jnp.float64), jnp.asarray(data.y_train)
    num_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    init, apply = make_classifier("mlp", settings.widths, data.x_train.shape[1:], num_classes,
                                  jnp.float64, activation=settings.activation)

    def loss_fn(params):
        return cross_entropy_loss(apply(params, x), y)

    eps, h, n = float(settings.eps), float(settings.learning_rate), int(settings.num_steps)
    members = settings.members()
    beta = jnp.asarray([b for b, _ in members])
    rho = jnp.asarray([r for _, r in members])
    params0 = init(jax.random.key(settings.seed))
    norm = lambda params: perturbed_one_norm(jax.grad(loss_fn)(params), eps)  # noqa: E731
    every = n // settings.num_times

    def make_optimizer(member):
        i = jnp.asarray(member).astype(jnp.int32)
        return ab.optim.adam(h, beta[i], rho[i], eps)

    start = time.perf_counter()
    result = ab.sweep(make_optimizer, loss_fn, params0, n,
                      grid={"member": tuple(float(i) for i in range(len(members)))},
                      metrics={"norm": norm}, save_params=False, save_every=every)
    adam_norm = np.asarray(result.trajectory.metrics["norm"], np.float64).reshape(len(members), -1)
    adam_loss = np.asarray(result.trajectory.loss, np.float64).reshape(len(members), -1)
    make_field = lambda step, beta1, beta2: flows.adam_full_batch(  # noqa: E731
        loss_fn, step, beta1, beta2, eps)
    solutions = flows.solve_steps(make_field, params0, [h] * len(members), [n] * len(members),
                                  hyper={"beta1": beta, "beta2": rho}, rtol=settings.rtol,
                                  atol=settings.atol)
    saved = np.arange(0, n + 1, every)
    many_norms = jax.jit(jax.vmap(norm))
    flow_norm = np.stack([np.asarray(many_norms(jax.tree.map(lambda a: a[saved], s)))
                          for s in solutions])
    ratio = jax.jit(first_order_ratio)  # fields are pytrees: one compile for all members
    ratios = np.array([float(ratio(flows.adam_full_batch(loss_fn, h, float(b), float(r), eps),
                                   params0)) for b, r in members])
    seconds = time.perf_counter() - start
    return FlowComparison(settings, np.asarray(beta), np.asarray(rho), saved, adam_norm,
                          flow_norm, adam_loss, ratios, seconds,
                          sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params0)))


_FLOW_MEMO: "OrderedDict[FlowComparisonSettings, FlowComparison]" = OrderedDict()


def flow_comparison(settings: FlowComparisonSettings) -> FlowComparison:
    """Adam and its flow for every member of ``settings`` (memoized: Figures 4–6 share it)."""
    if settings not in _FLOW_MEMO:
        _FLOW_MEMO[settings] = _flow_comparison(settings)
        while len(_FLOW_MEMO) > 2:
            _FLOW_MEMO.popitem(last=False)
    return _FLOW_MEMO[settings]


class OrderCheck(NamedTuple):
    """Adam's order of ‖∇E‖₁,ε over a sweep against the flow's, at each saved time (times,).

    ``decided`` where the tracking error max_i |Adam_i − flow_i| is at most ``error_fraction``
    × the smallest gap |flow_i − flow_{i+1}| between neighbouring swept values; ``agree`` where
    Adam's ranks equal the flow's; ``flow_r``/``adam_r`` Spearman's r between the swept value
    and the norm (+1: rises with it)."""

    tracking_error: np.ndarray
    smallest_gap: np.ndarray
    decided: np.ndarray
    agree: np.ndarray
    flow_r: np.ndarray
    adam_r: np.ndarray


def order_check(comparison: FlowComparison, swept: str) -> OrderCheck:
    """:class:`OrderCheck` of the β (``"beta"``) or ρ (``"rho"``) sweep of ``comparison``."""
    from adabias.studies.statistics import rank_correlation_by_column

    values, rows = comparison.sweep(swept)
    adam, flow = comparison.adam_norm[rows], comparison.flow_norm[rows]
    error = np.max(np.abs(adam - flow), axis=0)
    gap = np.min(np.abs(np.diff(flow, axis=0)), axis=0)
    decided = (gap > 0) & (error <= comparison.settings.error_fraction * gap)
    agree = np.all(np.argsort(adam, axis=0, kind="stable") == np.argsort(flow, axis=0,
                                                                          kind="stable"), axis=0)
    return OrderCheck(error, gap, decided, agree, rank_correlation_by_column(values, flow),
                      rank_correlation_by_column(values, adam))


def clear_flow_memo() -> None:
    """Forget the memoized flow comparisons."""
    _FLOW_MEMO.clear()


# --- labels -------------------------------------------------------------------------------------

_DATA_NAMES = {"digits": "digits (8×8)", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def data_label(dataset: str, train_size: Optional[int] = None, downsample: int = 1,
               image_size: int = 32) -> str:
    """E.g. "CIFAR-10, 1000 train images, 8×8": the data set as a figure title names it."""
    label = _DATA_NAMES.get(dataset, dataset)
    label += f", {train_size} train images" if train_size else ", all train images"
    if dataset != "digits":
        side = image_size // max(int(downsample), 1)
        label += f", {side}×{side}"
    return label


def model_label(model: str, widths: tuple, activation: str = "relu") -> str:
    """E.g. "MLP (256, ReLU)" or "6-conv CNN (32…128, dense 512)"."""
    if model == "mlp":
        return f"MLP ({', '.join(str(w) for w in widths)}, {activation})"
    if model == "cnn":
        return f"CNN ({', '.join(str(w) for w in widths)} channels)"
    if model == "cks_cnn":
        return "6-conv CNN (" + "-".join(str(w) for w in widths[:-1]) + f", dense {widths[-1]})"
    return {"resnet50": "ResNet-50", "resnet101": "ResNet-101", "vit": "SimpleViT"}.get(model,
                                                                                          model)


def flow_table(comparison: FlowComparison, swept: str) -> dict:
    """Columns ``time``, ``adam_<swept><value>``, ``flow_<swept><value>``: ‖∇E‖₁,ε of Adam and
    of its flow at the saved times, and the tracking error over the smallest gap."""
    values, rows = comparison.sweep(swept)
    check = order_check(comparison, swept)
    table = {"time": comparison.times, "step": comparison.steps}
    for value, row in zip(values, rows):
        table[f"adam_{swept}{value:g}"] = comparison.adam_norm[row]
        table[f"flow_{swept}{value:g}"] = comparison.flow_norm[row]
    table["tracking_error"] = check.tracking_error
    table["smallest_gap"] = check.smallest_gap
    table["decided"] = check.decided.astype(int)
    table["orders_agree"] = check.agree.astype(int)
    return table


def flow_order_decision(comparison: FlowComparison, swept: str) -> tuple[bool, dict, str]:
    """(held, numbers, note) of "Adam orders ‖∇E‖₁,ε over the sweep as its flow does" at the
    last saved time T: undecided when the tracking error exceeds ``error_fraction`` × the
    smallest gap between neighbouring values, contradicted when the ranks differ."""
    check = order_check(comparison, swept)
    values, rows = comparison.sweep(swept)
    t = float(comparison.times[-1])
    error, gap = float(check.tracking_error[-1]), float(check.smallest_gap[-1])
    fraction = comparison.settings.error_fraction
    adam, flow = comparison.adam_norm[rows, -1], comparison.flow_norm[rows, -1]
    numbers = {"tracking_error": error, "smallest_gap": gap, "orders_agree": bool(check.agree[-1]),
               "time": t, "values": values, "adam_norm": adam, "flow_norm": flow,
               "flow_spearman_r": float(check.flow_r[-1]),
               "adam_spearman_r": float(check.adam_r[-1]),
               "agree_at_saved_times": int(np.sum(check.agree[1:])),
               "saved_times": int(check.agree.size - 1),
               "max_first_order_ratio": float(np.max(comparison.first_order_ratio[rows]))}
    if not check.decided[-1]:
        ratio = error / gap if gap > 0 else float("inf")
        return False, numbers, (f"undecided: at t = {t:g} the tracking error {error:.3g} "
                                f"exceeds {fraction:.3g} × the smallest gap {gap:.3g} between "
                                f"neighbouring {swept} values (ratio {ratio:.3g})")
    if not check.agree[-1]:
        return False, numbers, (f"contradicted: at t = {t:g} Adam's norms "
                                f"{np.round(adam, 6).tolist()} are ranked differently from the "
                                f"flow's {np.round(flow, 6).tolist()}")
    return True, numbers, ""


def flow_notes(comparison: FlowComparison) -> list[str]:
    """Report lines of a flow comparison: data, model, the theorem's assumptions in numbers."""
    s = comparison.settings
    h = s.learning_rate
    window = max(v / (1 - v) for v in (*s.beta_values, *s.rho_values, s.beta_fixed, s.rho_fixed))
    return [f"Theory claims: {data_label(s.dataset, s.train_size)}, "
            f"{model_label('mlp', s.widths, s.activation)}, float64, p = {comparison.num_params}; "
            f"full-batch Adam (ε = {s.eps:g} inside the root, bias-corrected), h = {h:g}, "
            f"{s.num_steps} steps, β ∈ {list(s.beta_values)} at ρ = {s.rho_fixed:g} and "
            f"ρ ∈ {list(s.rho_values)} at β = {s.beta_fixed:g}, against the flow (2.2)–(2.3) "
            f"(Dopri8, rtol {s.rtol:g}) from the same start, compared at t = n·h. Assumptions: "
            f"max h·β/(1−β), h·ρ/(1−ρ) = {h * window:.2g}; first-order term / leading term at "
            f"the start ≤ {float(np.max(comparison.first_order_ratio)):.3g}. "
            f"{comparison.seconds:.1f} s, shared by Figures 4–6."]
