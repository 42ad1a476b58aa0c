"""Cost of the modified flows' right-hand sides, as ratios measured in one process.

1. One right-hand side of ``flows.adam_full_batch`` (order 1: a gradient and one
   Hessian-vector product; order 0: a gradient) over one gradient evaluation, each inside
   the same ``lax.scan`` of K explicit-Euler steps (so dispatch costs cancel). Target ≤ 3.
2. ``flows.adam_minibatch`` (CKS Theorem 3.1) at piece n, t = n·h, as n grows, with the
   default truncation (a fixed window of the last W steps), against a dense O(n²)
   evaluation of DESIGN §3.4 written here (all averages as (n+1)×(n+1) weight matrices, one
   HVP per averaging index). Reports the cost per evaluation against n, and the exponent
   of the total cost of evaluating the field once on each of the pieces 0 … n−1 (what a
   solve up to t = nh needs at least). Target ≤ 1.2.
3. Six step sizes of ``flows.adam_full_batch`` (ε = 1e-3, 4 steps each, tolerances 1e-6/1e-8)
   on a small tanh CNN (8, 16 channels, 32 digits, float64), compilation included, each way a user can solve them: ``flows.solve`` per h with the fields as they
   are (pytrees: one compilation), ``flows.solve`` per h with each field a fresh closure
   (what every field was before they became pytrees: one compilation per h), and one
   ``flows.solve_steps`` (one program for the six). The three run in interleaved rounds,
   each round after ``jax.clear_caches()``.

    .venv/bin/python benchmarks/bench_flows.py [--repeats R] [--max-n N] [--scale S] [--only PART]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import best_time, interleaved_best_times, report  # noqa: E402

from adabias import flows, problems  # noqa: E402
from adabias.flows.minibatch import window_size  # noqa: E402
from adabias.measures import hvp  # noqa: E402

# --- 1. full-batch right-hand side over one gradient ---------------------------------------------


def euler_scan(field, params, num_steps: int, dt: float = 1e-6):
    """θ ← θ + dt·f(0, θ), ``num_steps`` times inside one jitted lax.scan (f autonomous)."""

    @jax.jit
    def go(params):
        def body(p, _):
            d = field(0.0, p)
            return jax.tree.map(lambda a, b: a + dt * b, p, d), None

        return jax.lax.scan(body, params, None, length=num_steps)[0]

    return lambda: go(params)


def rhs_problems():
    key = jax.random.key(0)
    x, y, _, _ = problems.load_digits()
    cnn_data = {"x": jnp.asarray(x[:32], jnp.float32), "y": jnp.asarray(y[:32])}
    mlp_data = {"x": jnp.asarray(x[:256], jnp.float32), "y": jnp.asarray(y[:256])}
    cnn = problems.init_cnn(key, (8, 8, 1), 10, channels=(8, 16), dtype=jnp.float32)
    mlp = problems.init_mlp(key, (64, 64, 10), dtype=jnp.float32)
    cnn_loss = problems.classifier_loss(problems.cnn_apply)
    mlp_loss = problems.classifier_loss(problems.mlp_apply)
    return {
        "small CNN (8, 16 channels), 32 digits, float32": (lambda p: cnn_loss(p, cnn_data), cnn, 10),
        "MLP 64-64-10, 256 digits, float32": (lambda p: mlp_loss(p, mlp_data), mlp, 200),
    }


def rhs_rows(repeats: int, scale: int) -> list[dict]:
    """Floor and both fields timed in interleaved rounds (best of ``repeats`` each), so
    that load changes on a shared machine hit all three alike."""
    rows = []
    for name, (loss_fn, params, steps) in rhs_problems().items():
        steps *= scale
        gradient = lambda t, p, args=None, f=loss_fn: jax.tree.map(jnp.negative, jax.grad(f)(p))
        runs = {"gradient": euler_scan(gradient, params, steps)}
        for order in (1, 0):
            field = flows.adam_full_batch(loss_fn, 1e-3, 0.9, 0.999, 1e-8, order=order)
            runs[order] = euler_scan(field, params, steps)
        best = interleaved_best_times(runs, 1, rounds=repeats)
        floor = best["gradient"]
        row = {"problem": name, "evaluations": steps, "gradient (ms)": 1e3 * floor / steps}
        for order in (1, 0):
            row[f"adam_full_batch order {order} / gradient"] = best[order] / floor
        rows.append(row)
    return rows


# --- 2. Theorem 3.1's field at piece n --------------------------------------------------------

BATCHES = {"x": jnp.array([[1.0, 0.5], [-0.7, 1.2], [0.3, -0.9]]),
           "y": jnp.array([1.5, -0.4, 0.8])}
PARAMS = {"a": jnp.array([0.9, -0.6]), "b": jnp.array(0.3)}
H, BETA, RHO, EPS = 1e-3, 0.8, 0.9, 1e-3


def regression_loss(params, batch):
    a, b, x, y = params["a"], params["b"], batch["x"], batch["y"]
    residual = y - a[0] * a[1] * x[0] - b * x[1]
    return 0.5 * residual**2 + 0.05 * jnp.sum(a**4) + 0.1 * jnp.sin(a[0] * b) * x[0]


def dense_field(loss_fn, batches, h, beta, rho, eps, n: int):
    """DESIGN §3.4 at piece n without recursions: AV_γˡ as a dense lower-triangular weight
    matrix, the suffix sums S_k as an upper-triangular 0/1 matrix, one HVP per averaging
    index k (O(n²·p + n·HVP) per evaluation). Returns ``f(params)`` (flat vectors)."""
    m = jax.tree.leaves(batches)[0].shape[0]
    index = np.arange(n + 1)
    lag = index[:, None] - index[None, :]

    def weights(gamma):  # W[l, k] = (1−γ)γ^{l−k}/(1−γ^{l+1}), k ≤ l
        w = (1 - gamma) * gamma ** np.maximum(lag, 0) / (1 - gamma ** (index[:, None] + 1.0))
        return jnp.asarray(np.where(lag >= 0, w, 0.0))

    upper = jnp.asarray((index[:, None] <= index[None, :]) & (index[None, :] <= n - 1), float)
    batch_of = index % m

    def field(params, matrices):
        w_beta, w_rho, upper = matrices
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        flat_loss = lambda y, batch: loss_fn(unravel(y), batch)
        grads = jax.vmap(jax.grad(flat_loss), in_axes=(None, 0))(flat, batches)
        a = grads[batch_of]                                   # (n+1, p)
        big_m, big_r = w_beta @ a, jnp.sqrt(w_rho @ (a * a) + eps)
        q = big_m / big_r
        suffix = upper @ q                                    # S_k = Σ_{l=k}^{n−1} q_l
        batch_k = jax.tree.map(lambda leaf: leaf[batch_of], batches)
        h_suffix = jax.vmap(lambda s, b: hvp(flat_loss, flat, s, b))(suffix, batch_k)
        h_last = jax.vmap(lambda b: hvp(flat_loss, flat, q[n], b))(batch_k)
        two_l = w_beta[n] @ (2 * h_suffix + h_last)
        two_p = w_rho[n] @ (a * (2 * h_suffix + h_last))
        mn, rn = big_m[n], big_r[n]
        return -mn / rn + h * (mn * two_p / (2 * rn**3) - two_l / (2 * rn))

    return field, (weights(beta), weights(rho), upper)


def minibatch_rows(repeats: int, max_n: int) -> tuple[list[dict], list[dict]]:
    library = jax.jit(flows.adam_minibatch(regression_loss, BATCHES, H, BETA, RHO, EPS))
    flat = lambda tree: jax.flatten_util.ravel_pytree(tree)[0]
    per_eval = []
    ns = [n for n in (10, 30, 100, 300, 1000, 3000, 10000) if n <= max_n]
    for n in ns:
        t = jnp.asarray(n * H)
        lib = best_time(lambda: library(t, PARAMS), repeats)
        row = {"n": n, "adam_minibatch (ms)": 1e3 * lib}
        if n <= 3000:
            dense_fn, matrices = dense_field(regression_loss, BATCHES, H, BETA, RHO, EPS, n)
            dense_jit = jax.jit(dense_fn)
            dense = lambda params: dense_jit(params, matrices)
            got, want = flat(library(t, PARAMS)), dense(PARAMS)
            error = float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))
            assert error < 1e-10, (n, error)
            naive = best_time(lambda: dense(PARAMS), repeats)
            row.update({"dense O(n²) (ms)": 1e3 * naive, "dense / adam_minibatch": naive / lib,
                        "max relative difference": error})
        else:
            row.update({"dense O(n²) (ms)": "—", "dense / adam_minibatch": "—",
                        "max relative difference": "—"})
        per_eval.append(row)

    # total cost of one evaluation on each piece 0 … n−1, one compiled loop (n traced)
    field = flows.adam_minibatch(regression_loss, BATCHES, H, BETA, RHO, EPS)

    @jax.jit
    def sweep_pieces(n):
        def body(k, acc):
            return acc + flat(field(k * H, PARAMS))

        return jax.lax.fori_loop(0, n, body, jnp.zeros(3))

    totals = {n: best_time(lambda: sweep_pieces(n), max(1, repeats // 2)) for n in ns}
    fit_ns = [n for n in ns if n >= 100]
    exponent = float(np.polyfit(np.log(fit_ns), np.log([totals[n] for n in fit_ns]), 1)[0])
    dense_ns = [r["n"] for r in per_eval if r["dense O(n²) (ms)"] != "—" and r["n"] >= 100]
    dense_exponent = float(np.polyfit(np.log(dense_ns), np.log(
        [r["dense O(n²) (ms)"] for r in per_eval if r["n"] in dense_ns]), 1)[0])
    total_rows = [{"n": n, "total over pieces 0…n−1 (s)": totals[n],
                   "per piece (ms)": 1e3 * totals[n] / n} for n in ns]
    total_rows.append({"n": f"fitted exponent of total cost, n ≥ 100 (window W = "
                            f"{window_size(BETA, RHO)})", "total over pieces 0…n−1 (s)": exponent,
                       "per piece (ms)": f"dense per-evaluation exponent {dense_exponent:.2f}"})
    return per_eval, total_rows


# --- 3. six step sizes, compilation included ------------------------------------------------


def smooth_cnn_loss(data):
    """Cross-entropy of a CNN with tanh activations (conv 3×3 → tanh, twice; mean pool;
    dense) on ``data``, with :func:`adabias.problems.init_cnn`'s parameters: smooth, unlike
    the ReLU CNN, whose flow has a kink wherever a unit switches (an adaptive solver crawls)."""
    def logits(params, x):
        for conv in params["convs"]:
            x = jnp.tanh(jax.lax.conv_general_dilated(
                x, conv["w"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + conv["b"])
        return x.mean(axis=(1, 2)) @ params["head"]["w"] + params["head"]["b"]

    def loss(params):
        z = logits(params, data["x"])
        picked = jnp.take_along_axis(z, data["y"][:, None], axis=-1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(z, axis=-1) - picked)

    return loss


def step_size_rows(rounds: int) -> list[dict]:
    x, y, _, _ = problems.load_digits()
    loss_fn = smooth_cnn_loss({"x": jnp.asarray(x[:32]), "y": jnp.asarray(y[:32])})
    params0 = problems.init_cnn(jax.random.key(0), (8, 8, 1), 10, channels=(8, 16),
                                dtype=jnp.float64)
    step_sizes, num_steps, tolerances = [1e-3 / 2**k for k in range(6)], 4, dict(rtol=1e-6, atol=1e-8)
    field = lambda h: flows.adam_full_batch(loss_fn, h, 0.9, 0.999, 1e-3)  # noqa: E731
    ts = lambda h: jnp.arange(num_steps + 1) * h  # noqa: E731

    def pytrees():
        return [flows.solve(field(h), params0, ts(h), **tolerances) for h in step_sizes]

    def closures():   # hyperparameters as compile-time constants of a fresh function per h
        return [flows.solve(lambda t, y, args, f=field(h): f(t, y, args), params0, ts(h),
                            **tolerances) for h in step_sizes]

    def together():
        return flows.solve_steps(field, params0, step_sizes, [num_steps] * 6, sequential=True,
                                 **tolerances)

    runs = {"solve per h, fields as pytrees": pytrees,
            "solve per h, each field a fresh closure (before)": closures,
            "solve_steps, six h in one program (sequential)": together}
    best = {name: float("inf") for name in runs}
    results, compiled = {}, {}
    events: list = []
    listener = lambda event, duration, **kw: events.append(duration) if "backend_compile" in event else None  # noqa: E731
    jax.monitoring.register_event_duration_secs_listener(listener)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", flows.AsymptoticRegimeWarning)
        for _ in range(rounds):
            for name, run in runs.items():
                jax.clear_caches()
                events.clear()
                start = time.perf_counter()
                results[name] = jax.block_until_ready(run())
                best[name] = min(best[name], time.perf_counter() - start)
                compiled[name] = (len(events), sum(events))
    jax.monitoring.unregister_event_duration_listener(listener)
    flat = lambda paths: np.concatenate([jax.flatten_util.ravel_pytree(p)[0] for p in paths])  # noqa: E731
    reference = flat(results["solve per h, fields as pytrees"])
    base = best["solve per h, fields as pytrees"]
    return [{"method": name, "six step sizes (s, compilation included)": best[name],
             "/ pytree fields": best[name] / base,
             "XLA compilations (s), last round": f"{compiled[name][0]} ({compiled[name][1]:.1f})",
             "max |Δθ| to pytree fields": float(np.max(np.abs(flat(results[name]) - reference)))}
            for name in runs]


def main(repeats: int, max_n: int, scale: int, only: str) -> None:
    command = (f".venv/bin/python benchmarks/bench_flows.py --repeats {repeats} --max-n {max_n}"
               f" --scale {scale} --only {only}")
    if only in ("all", "rhs"):
        report("flows_rhs", rhs_rows(repeats, scale), command)
    if only in ("all", "minibatch"):
        per_eval, totals = minibatch_rows(repeats, max_n)
        report("flows_minibatch_per_piece", per_eval, command)
        report("flows_minibatch_total", totals, command)
    if only in ("all", "step-sizes"):
        report("flows_six_step_sizes", step_size_rows(max(1, min(repeats, 2))), command)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-n", type=int, default=10000)
    parser.add_argument("--scale", type=int, default=1, help="multiply the scan lengths")
    parser.add_argument("--only", choices=("all", "rhs", "minibatch", "step-sizes"), default="all")
    args = parser.parse_args()
    main(args.repeats, args.max_n, args.scale, args.only)
