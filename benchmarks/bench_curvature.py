"""Cost and accuracy of the curvature measures on MLPs of the digits data (float32).

(a) Exact tr(Diag(H)^{1/2}) (``diag_power_trace(method="exact")``, p HVPs in chunks) against
    ``jax.hessian`` followed by the diagonal, on MLPs with p ≈ 1.2·10³ … 4.8·10³: time ratio
    at the largest p, and the temporary memory XLA allocates for each compiled program
    (``compile().memory_analysis()``): O(chunk·p) for the HVPs, O(p²) for the Hessian.
(b) Hutchinson tr(Diag(H)^{1/2}) on an MLP with p ≈ 10⁵: error of the estimated diagonal
    against exact Hᵢᵢ = eᵢᵀHeᵢ on 200 random coordinates, for N = 1 … 1024 probes
    (several independent keys), plotted to ``results/hutchinson_error.png``; and the cost
    per probe over the cost of one HVP.

    .venv/bin/python benchmarks/bench_curvature.py [--repeats K] [--max-samples N] [--part exact|hutchinson]
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

sys.path.insert(0, os.path.dirname(__file__))
from common import RESULTS, interleaved_best_times, report  # noqa: E402

from adabias import measures, problems  # noqa: E402

NUM_IMAGES = 128


def mlp_problem(sizes: tuple, seed: int = 0):
    """(E(θ) on raveled θ, θ₀, loss on the params pytree) for an MLP on 128 digits."""
    x, y, _, _ = problems.load_digits()
    batch = {"x": jnp.asarray(x[:NUM_IMAGES], jnp.float32), "y": jnp.asarray(y[:NUM_IMAGES])}
    params = problems.init_mlp(jax.random.key(seed), sizes, dtype=jnp.float32)
    loss = problems.classifier_loss(problems.mlp_apply)
    flat, unravel = ravel_pytree(params)
    return (lambda v: loss(unravel(v), batch)), flat


def temp_bytes(fn, *args) -> float:
    """Temporary memory of the compiled program (MB), or NaN where XLA does not report it."""
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    return float(getattr(stats, "temp_size_in_bytes", np.nan)) / 1e6 if stats is not None else np.nan


def exact_vs_hessian(repeats: int) -> tuple[list[dict], list[dict]]:
    rows, timing = [], []
    for hidden in (16, 32, 64):
        loss, flat = mlp_problem((64, hidden, 10))
        p = flat.size
        exact = lambda v: measures.diag_power_trace(loss, v, power=0.5, method="exact")
        dense = lambda v: jnp.sum(jnp.sqrt(jnp.maximum(jnp.diag(jax.hessian(loss)(v)), 0.0)))
        row = {"MLP": f"64-{hidden}-10", "p": int(p), "p² × 4 bytes (MB)": p * p * 4 / 1e6,
               "exact: temp memory (MB)": temp_bytes(exact, flat),
               "jax.hessian: temp memory (MB)": temp_bytes(dense, flat)}
        if hidden == 64:
            exact_jit, dense_jit = jax.jit(exact), jax.jit(dense)
            value_exact, value_dense = float(exact_jit(flat)), float(dense_jit(flat))
            many = jax.jit(lambda v, ts: jax.lax.map(measures.flat_hvp(loss, v)[0], ts))
            tangents = jnp.ones((64, p), flat.dtype)
            times = interleaved_best_times({"exact": lambda: exact_jit(flat), "dense": lambda: dense_jit(flat),
                                 "hvp": lambda: many(flat, tangents)}, 1, rounds=repeats)
            t_exact, t_dense, t_hvp = times["exact"], times["dense"], times["hvp"] / 64
            timing.append({"MLP": f"64-{hidden}-10", "p": int(p), "exact (s)": t_exact,
                           "jax.hessian (s)": t_dense, "speed-up of exact": t_dense / t_exact,
                           "exact / (p × one of 64 HVPs)": t_exact / (p * t_hvp),
                           "relative difference of the values": abs(value_exact - value_dense) / abs(value_dense)})
        rows.append(row)
    return rows, timing


def hutchinson_error(repeats: int, max_samples: int, num_keys: int = 8, num_coords: int = 200):
    loss, flat = mlp_problem((64, 300, 256, 10))
    p = flat.size
    matvec, _, _ = measures.flat_hvp(loss, flat)
    coords = jnp.asarray(np.random.default_rng(0).choice(p, num_coords, replace=False))
    exact = np.asarray(jax.jit(jax.vmap(lambda i: matvec(jax.nn.one_hot(i, p, dtype=flat.dtype))[i]))(coords))
    exact_root = float(np.sum(np.sqrt(np.maximum(exact, 0.0))))
    ns = [2**j for j in range(int(np.log2(max_samples)) + 1)]
    diag_error, root_error = [], []
    for n in ns:
        keys = jax.random.split(jax.random.key(n), num_keys)
        estimate = jax.jit(jax.vmap(lambda k: measures.hessian_diag(
            loss, flat, method="hutchinson", key=k, num_samples=n)[coords]))
        d = np.asarray(estimate(keys))  # (num_keys, num_coords)
        diag_error.append(float(np.sqrt(np.mean((d - exact) ** 2)) / np.sqrt(np.mean(exact**2))))
        roots = np.sum(np.sqrt(np.maximum(d, 0.0)), axis=1)
        root_error.append(float(np.sqrt(np.mean((roots - exact_root) ** 2)) / exact_root))
    # cost of one probe (N = 64) against one HVP alone (with its linearization) and against
    # one of 64 HVPs that share a linearization (lax.map over fixed tangents), interleaved
    n_time = 64
    probes = jax.jit(lambda k: measures.hessian_diag(loss, flat, method="hutchinson", key=k, num_samples=n_time))
    one = jax.jit(lambda v, t: measures.flat_hvp(loss, v)[0](t))
    many = jax.jit(lambda v, ts: jax.lax.map(measures.flat_hvp(loss, v)[0], ts))
    tangents = jnp.ones((n_time, p), flat.dtype)
    times = interleaved_best_times({"probes": lambda: probes(jax.random.key(1)), "one": lambda: one(flat, flat),
                         "many": lambda: many(flat, tangents)}, repeats)
    t_probes, t_one, t_many = times["probes"], times["one"], times["many"] / n_time
    slope_diag = float(np.polyfit(np.log(ns), np.log(diag_error), 1)[0])
    slope_root = float(np.polyfit(np.log(ns), np.log(root_error), 1)[0])
    plot(ns, diag_error, root_error, p, num_coords, num_keys)
    rows = [{"N probes": n, "rel. RMS error of Hᵢᵢ (200 coords)": e, "rel. RMS error of Σ √Hᵢᵢ (200 coords)": r}
            for n, e, r in zip(ns, diag_error, root_error)]
    summary = {"p": int(p), "log-log slope, Hᵢᵢ": slope_diag, "log-log slope, Σ √Hᵢᵢ": slope_root,
               "one HVP alone (ms)": 1e3 * t_one, "one of 64 HVPs (ms)": 1e3 * t_many,
               "per probe (ms)": 1e3 * t_probes / n_time, "per probe / one HVP alone": t_probes / n_time / t_one,
               "per probe / one of 64 HVPs": t_probes / n_time / t_many}
    return rows, summary


def plot(ns, diag_error, root_error, p, num_coords, num_keys) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.loglog(ns, diag_error, "o-", label=r"$\hat d_i$ vs exact $H_{ii}$ (relative RMS)")
    ax.loglog(ns, root_error, "s-", label=r"$\sum_i \sqrt{\max(\hat d_i,0)}$ vs $\sum_i \sqrt{H_{ii}}$ (relative RMS)")
    ns_arr = np.asarray(ns, float)
    ax.loglog(ns_arr, diag_error[0] * ns_arr**-0.5, "k--", label=r"reference $\propto N^{-1/2}$")
    ax.set_xlabel("number of Rademacher probes N")
    ax.set_ylabel("relative RMS error")
    ax.set_title(f"Hutchinson diagonal of H, MLP with p = {p}: error on {num_coords} random\n"
                 f"coordinates against exact $H_{{ii}}=e_i^T H e_i$, RMS over {num_keys} keys", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "hutchinson_error.png", dpi=120)
    plt.close(fig)


def main(repeats: int, max_samples: int, part: str) -> None:
    command = "python benchmarks/bench_curvature.py"
    if part in ("all", "exact"):
        memory, timing = exact_vs_hessian(repeats)
        report("curvature_exact_memory", memory, command + " --part exact")
        report("curvature_exact_time", timing, command + " --part exact")
    if part in ("all", "hutchinson"):
        rows, summary = hutchinson_error(repeats, max_samples)
        report("curvature_hutchinson", rows, command + " --part hutchinson")
        report("curvature_hutchinson_cost", [summary], command + " --part hutchinson")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-samples", type=int, default=1024)
    parser.add_argument("--part", choices=("all", "exact", "hutchinson"), default="all")
    args = parser.parse_args()
    main(args.repeats, args.max_samples, args.part)
