"""LWL sparse regression: Adam (AGM form) against SGD with label noise, test loss against n.

On the manifold of the diagonal net, label-noise SGD reduces tr(H) ∝ Σ(u_j² + v_j²) ≥ ‖w‖₁ and
Adam reduces tr(Diag(H)^{1/2}) ∝ Σ(|u_j| + |v_j|) ≥ Σ√|w_j| (DESIGN §3.5): an ℓ₁ against an
ℓ_{1/2} penalty on the interpolators, so Adam should recover a k-sparse w* from fewer samples.

Sample-complexity curve: for every n of the grid and both optimizers, one ``ab.sweep`` over
seeds (initialisation and label noise). Two devices keep this to one compiled program per
optimizer:

* **padding**: the n samples are the first n rows of one data set of n_max rows (nested
  designs); rows ≥ n are zero (z = 0, y = 0), which adds nothing to the gradient even with label
  noise (∂f/∂θ ∝ z = 0), and the factor n_max/n turns the mean over n_max rows into the mean
  over the n real ones (:func:`pad_samples`);
* **stacked data sets**: each sweep member trains one copy of the network per data set,
  stacked along a leading axis, on the sum of the per-copy losses (:func:`stacked_loss`). The
  AGM with V = diag and SGD act coordinate-wise, so the copies are exactly independent runs
  (tested); the spread over data sets, the main source of variation, is then inside one sweep.

Claim, fixed before running: the sample complexity n*(opt) is the smallest n of the grid at
which the mean final test loss ‖w − w*‖² over all runs (data sets × seeds) is at most
τ = ``threshold_fraction``·‖w*‖² (= 0.1·k); Adam wins when n*(Adam) < n*(SGD) (n* = ∞ when no
n of the grid reaches τ).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

import adabias as ab
from adabias._validation import require_x64
from adabias.experiments.base import Context, Result, experiment, make_claim
from adabias.experiments.plotting import panels
from adabias.optim import agm, diagonal, gd, inverse_root
from adabias.problems import (
    diagonal_net_loss,
    diagonal_net_test_loss,
    init_diagonal_net,
    label_noise,
    sparse_regression_data,
)

QUICK = {
    "d": 100, "k": 5, "features": "rademacher", "delta": 0.5, "init_scale": 0.01,
    "ns": [14, 16, 18, 20, 22, 24, 26, 28], "num_datasets": 4, "num_seeds": 3,
    "num_steps": 20_000, "save_every": 1_000,
    "adam_learning_rate": 0.01, "beta1": 0.9, "beta2": 0.95, "eps": 1e-6,
    "sgd_learning_rate": 0.1, "threshold_fraction": 0.1, "data_seed": 0, "seed": 1,
}
FULL = dict(QUICK, d=1000, ns=[20, 30, 40, 50, 60, 70, 80], num_datasets=8,
            num_steps=1_000_000, save_every=20_000)

OPTIMIZERS = ("adam", "sgd")

_label_noise = functools.lru_cache(maxsize=None)(label_noise)  # one noise function per δ: one compile


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
    padded = jax.vmap(lambda b: pad_samples(b, n))(batches)
    return padded


# --- the two optimizers ---------------------------------------------------------------------


def optimizer_factories(settings: Mapping[str, Any]) -> dict[str, Callable]:
    """``make_optimizer(learning_rate)`` for Adam (AGM: β₁, β₂, S = 1/(√v + ε)) and SGD."""
    beta1, beta2, eps = settings["beta1"], settings["beta2"], settings["eps"]
    return {
        "adam": lambda learning_rate: agm(learning_rate, beta1, beta2, diagonal, inverse_root(eps)),
        "sgd": lambda learning_rate: gd(learning_rate),
    }


def train_copies(make_optimizer: Callable, learning_rate: float, loss_fn: Callable,
                 init_copy: Callable[[jax.Array], Any], batches: dict, settings: Mapping[str, Any],
                 progress: bool = False) -> ab.engine.SweepResult:
    """One ``ab.sweep`` over ``num_seeds`` seeds; each member trains one copy per stacked data set.

    ``init_copy(key)`` draws one copy's start; seed s uses key fold_in(key, s) for its copies'
    starts (split per copy) and for its label noise (``delta``).
    """
    num_copies = int(jax.tree.leaves(batches)[0].shape[0])

    def params0(key: jax.Array) -> Any:
        return jax.vmap(init_copy)(jax.random.split(key, num_copies))

    return ab.sweep(make_optimizer, stacked_loss(loss_fn), params0, settings["num_steps"],
                    grid={"learning_rate": [learning_rate]}, num_seeds=settings["num_seeds"],
                    key=jax.random.key(settings["seed"]), batches=jax.tree.map(lambda x: x[None], batches),
                    noise=_label_noise(settings["delta"]), save_every=settings["save_every"],
                    progress=progress)


def sample_complexity(ns: list, mean_final: list, threshold: float) -> float:
    """Smallest n whose mean final test loss is ≤ threshold (∞ when none)."""
    for n, value in zip(ns, mean_final):
        if value <= threshold:
            return float(n)
    return float("inf")


# --- the experiment -------------------------------------------------------------------------


@experiment(
    id="lwl.sparse", paper="LWL", title="Sparse regression with a diagonal net: Adam needs fewer samples",
    quick=QUICK, full=FULL,
    claims={
        "lwl.sparse.sample_complexity": "With label noise, Adam reaches low test loss at smaller n "
            "than SGD: the smallest n of the grid at which the mean final test loss ‖w − w*‖² "
            "is ≤ 0.1·‖w*‖² is smaller for Adam (Adam's ℓ_{1/2}-like bias against SGD's ℓ₁).",
    },
)
def run(settings: dict, context: Context) -> Result:
    require_x64("lwl.sparse")
    d, k, ns = settings["d"], settings["k"], list(settings["ns"])
    n_max = max(ns)

    def make_data(key):
        return sparse_regression_data(key, n_max, d, k, features=settings["features"])

    full_batches, w_stars = stacked_data(make_data, jax.random.key(settings["data_seed"]),
                                         settings["num_datasets"])
    factories = optimizer_factories(settings)
    rates = {"adam": settings["adam_learning_rate"], "sgd": settings["sgd_learning_rate"]}
    init_copy = lambda key: init_diagonal_net(key, d, settings["init_scale"])  # noqa: E731
    test_loss = jax.jit(jax.vmap(jax.vmap(jax.vmap(diagonal_net_test_loss, in_axes=(0, 0)),
                                          in_axes=(0, None)), in_axes=(0, None)))
    train_loss = jax.jit(jax.vmap(jax.vmap(diagonal_net_loss, in_axes=(0, 0)), in_axes=(0, None)))
    threshold = settings["threshold_fraction"] * float(jnp.sum(w_stars[0] ** 2))

    finals, curves, train_finals, diverged = {}, {}, {}, {}
    jobs = [(name, n) for name in OPTIMIZERS for n in ns]
    for name, n in context.track(jobs, "lwl.sparse"):
        batches = stacked_padded(full_batches, n)
        result = train_copies(factories[name], rates[name], diagonal_net_loss, init_copy,
                              batches, settings)
        params = result.trajectory.params  # leaves (seeds, records, copies, d)
        losses = np.asarray(test_loss(params, w_stars))  # (seeds, records, copies)
        finals[name, n] = losses[:, -1, :].ravel()
        curves[name, n] = losses.reshape(losses.shape[0], losses.shape[1], -1)
        final_params = jax.tree.map(lambda x: x[:, -1], params)
        real = {"z": full_batches["z"][:, :n], "y": full_batches["y"][:, :n]}
        train_finals[name, n] = np.asarray(train_loss(final_params, real)).ravel()
        diverged[name, n] = int(np.sum(np.asarray(result.trajectory.diverged_at) >= 0))
    steps = np.asarray(result.trajectory.steps[0])

    mean_final = {name: [float(np.mean(finals[name, n])) for n in ns] for name in OPTIMIZERS}
    sem_final = {name: [float(np.std(finals[name, n]) / np.sqrt(finals[name, n].size)) for n in ns]
                 for name in OPTIMIZERS}
    recovered = {name: [float(np.mean(finals[name, n] <= threshold)) for n in ns] for name in OPTIMIZERS}
    n_star = {name: sample_complexity(ns, mean_final[name], threshold) for name in OPTIMIZERS}
    log_area = {name: float(np.trapezoid(np.log10(mean_final[name]), ns)) for name in OPTIMIZERS}

    figure = _figure(settings, ns, steps, finals, curves, mean_final, sem_final, recovered, threshold)
    held = n_star["adam"] < n_star["sgd"]
    runs = settings["num_datasets"] * settings["num_seeds"]
    numbers = {
        "threshold": threshold, "n_star_adam": n_star["adam"], "n_star_sgd": n_star["sgd"],
        "ns": ns, "mean_final_test_loss_adam": mean_final["adam"],
        "mean_final_test_loss_sgd": mean_final["sgd"],
        "fraction_recovered_adam": recovered["adam"], "fraction_recovered_sgd": recovered["sgd"],
        "area_log10_mean_test_loss_adam": log_area["adam"], "area_log10_mean_test_loss_sgd": log_area["sgd"],
        "runs_per_point": runs,
        "max_mean_final_train_loss": {name: max(float(np.mean(train_finals[name, n])) for n in ns)
                                      for name in OPTIMIZERS},
        "diverged_members": {name: sum(diverged[name, n] for n in ns) for name in OPTIMIZERS},
    }
    claims = [make_claim(run_entry, "lwl.sparse.sample_complexity", held, numbers, settings)]
    data = {"final": {"n": np.asarray(ns, float),
                      **{f"{name}_mean_test_loss": np.asarray(mean_final[name]) for name in OPTIMIZERS},
                      **{f"{name}_sem_test_loss": np.asarray(sem_final[name]) for name in OPTIMIZERS},
                      **{f"{name}_fraction_recovered": np.asarray(recovered[name]) for name in OPTIMIZERS}},
            "runs": {"n": np.repeat(np.asarray(ns, float), runs),
                     **{f"{name}_final_test_loss": np.concatenate([finals[name, n] for n in ns])
                        for name in OPTIMIZERS}},
            "curves": {"step": steps.astype(float),
                       **{f"{name}_n{n}_mean_test_loss": curves[name, n].mean(axis=(0, 2))
                          for name in OPTIMIZERS for n in ns}}}
    notes = [
        f"Diagonal net d = {d}, w* = first k = {k} coordinates equal to 1, {settings['features']} "
        f"features, label noise δ = {settings['delta']}, init u = v = {settings['init_scale']}·N(0, I).",
        f"Adam: AGM with β₁ = {settings['beta1']}, β₂ = {settings['beta2']}, ε = {settings['eps']} "
        f"(the authors' values), η = {settings['adam_learning_rate']}; SGD: η = "
        f"{settings['sgd_learning_rate']} (at 3× this SGD's label-noise fluctuation alone kept the "
        "test loss near 1). Both reach a training loss at the noise floor (numbers: "
        "max_mean_final_train_loss) and then drift along the manifold.",
        f"{settings['num_steps']} steps; every point is {settings['num_datasets']} nested data sets "
        f"× {settings['num_seeds']} seeds (initialisation and label noise) = {runs} runs; error "
        "bars are the standard error of the mean, dots the single runs.",
        f"τ = {settings['threshold_fraction']}·‖w*‖² = {threshold:g}, fixed before running. "
        f"n*(Adam) = {n_star['adam']}, n*(SGD) = {n_star['sgd']}.",
        "SGD's drift speed is η²·δ²/n per step and its η is limited by its fluctuations, so at "
        "short runs SGD may still be moving towards its ℓ₁ limit: the middle panel shows whether "
        "the curves have flattened.",
    ]
    return Result(figures={"sample_complexity": figure}, data=data, claims=claims, notes=notes)


run_entry = run


def _figure(settings, ns, steps, finals, curves, mean_final, sem_final, recovered, threshold):
    figure, axes = panels(1, 3, width=3.8, height=3.0)
    colors = {"adam": "C3", "sgd": "C0"}
    labels = {"adam": f"Adam (η = {settings['adam_learning_rate']})",
              "sgd": f"SGD (η = {settings['sgd_learning_rate']})"}
    ax = axes[0, 0]
    for offset, name in zip((-0.4, 0.4), OPTIMIZERS):
        mean, sem = np.asarray(mean_final[name]), np.asarray(sem_final[name])
        lower = np.minimum(sem, mean * 0.999)
        ax.errorbar(np.asarray(ns) + offset, mean, yerr=[lower, sem], fmt="o-", color=colors[name],
                    capsize=3, label=labels[name])
        for n in ns:
            ax.plot(np.full(finals[name, n].size, n + offset), finals[name, n], ".", color=colors[name],
                    alpha=0.25, ms=3)
    ax.axhline(threshold, color="k", ls=":", lw=1, label=f"τ = {threshold:g}")
    ax.set_yscale("log")
    ax.set_xlabel("number of training samples n")
    ax.set_ylabel("final test loss ‖w − w*‖²")
    ax.set_title("test loss vs n (mean ± s.e.m., dots: runs)")
    ax.legend()
    ax = axes[0, 1]
    middle = ns[len(ns) // 2]
    for name in OPTIMIZERS:
        for n, style in ((middle, "-"), (ns[-1], "--")):
            ax.plot(steps, curves[name, n].mean(axis=(0, 2)), style, color=colors[name],
                    label=f"{name.upper() if name == 'sgd' else 'Adam'}, n = {n}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("mean test loss")
    ax.set_title("test loss during training")
    ax.legend()
    ax = axes[0, 2]
    for name in OPTIMIZERS:
        ax.plot(ns, recovered[name], "o-", color=colors[name], label=labels[name])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("number of training samples n")
    ax.set_ylabel("fraction of runs with test loss ≤ τ")
    ax.set_title("recovery rate")
    ax.legend()
    figure.suptitle(f"LWL sparse regression: diagonal net, d = {settings['d']}, k = {settings['k']}, "
                    f"label noise δ = {settings['delta']}")
    return figure
