"""Cost of one right-hand side of the memory-corrected flows, as ratios measured in one process.

1. ``flows.memory_corrected`` (any optax transform: a frozen replay of the last W steps, one
   jvp of it, a gradient and one HVP) for ``optax.adam`` with β₂ = 0.9, 0.99, 0.999, and the
   closed form ``flows.memory_corrected_ema`` of ``ab.optim.adam``, each over one gradient
   evaluation, all inside the same ``lax.scan`` of K explicit-Euler steps on one piece n (so
   dispatch costs cancel). Also reported: the replay's cost per replayed step over one
   optimizer update (the element-wise work a window of W steps costs, three passes).
   Targets: the closed form ≤ 3 gradients; the replay ≈ 3 gradients + 3·W updates. W is
   the window the field probes itself (``flows.memory.probe_memory``), and the probe's own
   cost (once per transform and parameter structure, at trace time) is timed on a fresh
   transform after one warm-up probe.
2. The same right-hand side at pieces n = 10 … 10⁵ (β₂ = 0.99): flat in n (the window W is
   fixed by the truncation).

    .venv/bin/python benchmarks/bench_memory_flows.py [--repeats R]
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import optax

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import interleaved_best_times, report  # noqa: E402

from adabias import flows, problems  # noqa: E402
from adabias.flows.memory import probe_memory  # noqa: E402

H, BETA1 = 1e-3, 0.9


def problem():
    x, y, _, _ = problems.load_digits()
    data = {"x": jnp.asarray(x[:256], jnp.float64), "y": jnp.asarray(y[:256])}
    params = problems.init_mlp(jax.random.key(0), (64, 64, 10), dtype=jnp.float64)
    loss = problems.classifier_loss(problems.mlp_apply)
    return (lambda p: loss(p, data)), params


def euler_scan(field, params, num_steps: int, t: float, dt: float = 1e-9):
    """θ ← θ + dt·f(t, θ), ``num_steps`` times at the fixed time t, one jitted lax.scan."""

    @jax.jit
    def go(params):
        def body(p, _):
            return jax.tree.map(lambda a, b: a + dt * b, p, field(t, p)), None

        return jax.lax.scan(body, params, None, length=num_steps)[0]

    return lambda: go(params)


def update_scan(optimizer, params, num_steps: int):
    """``num_steps`` optimizer updates with a fixed gradient (the replay's element-wise unit)."""

    @jax.jit
    def go(params):
        grads = jax.tree.map(jnp.ones_like, params)

        def body(state, _):
            return optimizer.update(grads, state, params)[1], None

        return jax.lax.scan(body, optimizer.init(params), None, length=num_steps)[0]

    return lambda: go(params)


def rhs_rows(repeats: int) -> list[dict]:
    loss, params = problem()
    gradient = lambda t, p, args=None: jax.tree.map(jnp.negative, jax.grad(loss)(p))
    rows = []
    probe_memory(optax.adam(H, b1=BETA1, b2=0.5), params)      # JAX's eager kernels, once
    for beta2 in (0.9, 0.99, 0.999):
        optimizer = optax.adam(H, b1=BETA1, b2=beta2, eps=0.0, eps_root=1e-8)
        start = time.perf_counter()
        probe = probe_memory(optimizer, params)
        probe_ms = 1e3 * (time.perf_counter() - start)
        window = probe.window
        assert window == flows.memory_window(beta2), (window, flows.memory_window(beta2))
        steps = max(2, 20000 // window)          # about the same time for every β₂
        n = 2 * window                           # past the transient: a full window
        replay = flows.memory_corrected(optimizer, loss, H, check_start=False)
        closed = flows.memory_corrected_ema(flows.adam_ema_form(BETA1, beta2, 1e-8), loss, H)
        runs = {"gradient": euler_scan(gradient, params, steps, n * H),
                "replay": euler_scan(replay, params, steps, n * H),
                "closed": euler_scan(closed, params, steps, n * H),
                "updates": update_scan(optimizer, params, 3 * window * steps)}
        best = interleaved_best_times(runs, 1, rounds=repeats)
        floor = best["gradient"]
        rows.append({"β₂": beta2, "probed γ": probe.decay, "window W": window,
                     "probe (ms)": probe_ms, "evaluations": steps,
                     "gradient (ms)": 1e3 * floor / steps,
                     "memory_corrected / gradient": best["replay"] / floor,
                     "closed form / gradient": best["closed"] / floor,
                     "3·W updates / gradient": best["updates"] / floor,
                     "(replay − closed) / 3·W updates": (best["replay"] - best["closed"])
                     / best["updates"]})
    return rows


def flatness_rows(repeats: int) -> list[dict]:
    loss, params = problem()
    optimizer = optax.adam(H, b1=BETA1, b2=0.99, eps=0.0, eps_root=1e-8)
    replay = flows.memory_corrected(optimizer, loss, H, check_start=False)
    ns = (10, 100, 1000, 10_000, 100_000)
    runs = {n: euler_scan(replay, params, 5, n * H) for n in ns}
    best = interleaved_best_times(runs, 1, rounds=repeats)
    window = probe_memory(optimizer, params).window
    return [{"n": n, "window W": window, "per evaluation (ms)": 1e3 * best[n] / 5,
             "relative to n = 10": best[n] / best[ns[0]]} for n in ns]


def main(repeats: int) -> None:
    command = f".venv/bin/python benchmarks/bench_memory_flows.py --repeats {repeats}"
    report("memory_flows_rhs", rhs_rows(repeats), command)
    report("memory_flows_flat_in_n", flatness_rows(repeats), command)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    main(parser.parse_args().repeats)
