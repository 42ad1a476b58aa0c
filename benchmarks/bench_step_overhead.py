"""Cost of an optimizer step over the cost of a gradient evaluation, in the same scan.

Floor: a bare ``lax.scan`` whose body is one gradient evaluation and θ ← θ − h·g. Compared:
the same scan with optax/adabias Adam instead, and ``ab.run`` (which adds divergence checks
and loss records). Ratio 1 is the floor; the target is ≤ 1.3. A second table counts the XLA
compilations of a 16-point ``ab.sweep`` grid (hyperparameters are traced: one program).

    .venv/bin/python benchmarks/bench_step_overhead.py [--steps N] [--repeats K] [--rounds R] [--only NAME]
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import block, interleaved_best_times, report  # noqa: E402

import adabias as ab  # noqa: E402
from adabias import problems  # noqa: E402
from adabias.engine import driver as engine  # noqa: E402


def scan_steps(loss_fn, optimizer, params, num_steps):
    """θ updated ``num_steps`` times by ``optimizer`` inside one lax.scan (no records)."""

    @jax.jit
    def go(params):
        def body(carry, _):
            p, s = carry
            g = jax.grad(loss_fn)(p)
            u, s = optimizer.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (p, _), _ = jax.lax.scan(body, (params, optimizer.init(params)), None, length=num_steps)
        return p

    return lambda: go(params)


def grad_floor(loss_fn, params, num_steps, learning_rate=1e-3):
    @jax.jit
    def go(params):
        def body(p, _):
            g = jax.grad(loss_fn)(p)
            return jax.tree.map(lambda a, b: a - learning_rate * b, p, g), None

        return jax.lax.scan(body, params, None, length=num_steps)[0]

    return lambda: go(params)


def problems_under_test():
    key = jax.random.key(0)
    x_train, y_train, _, _ = problems.load_digits()
    # 128 images: XLA's CPU convolutions are slow (≈2 s per full-batch gradient on 1347 images)
    data = {"x": jnp.asarray(x_train[:128], jnp.float32), "y": jnp.asarray(y_train[:128])}
    cnn = problems.init_cnn(key, (8, 8, 1), 10, channels=(16, 32), dtype=jnp.float32)
    cnn_loss = problems.classifier_loss(problems.cnn_apply)
    batch, _ = problems.sparse_regression_data(key, n=50, d=1000, k=5, dtype=jnp.float32)
    net = problems.init_diagonal_net(key, 1000, dtype=jnp.float32)
    return {
        "small CNN (16, 32 channels), 128 digits, float32": (lambda p: cnn_loss(p, data), cnn, 1),
        "diagonal net d=1000, n=50, float32": (lambda p: problems.diagonal_net_loss(p, batch), net, 100),
    }


def count_compilations(fn) -> int:
    """Number of XLA backend compilations while ``fn()`` runs."""
    events = []
    listener = lambda event, duration, **kwargs: events.append(event) if "backend_compile" in event else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        block(fn())
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return len(events)


def compilation_rows() -> list[dict]:
    """Compilations of a 4 × 4 grid of (learning rate, β₂), then of a second grid of new values.

    "Training programs" counts the engine's compiled training scans (the jit cache of
    ``engine._advance_jit``); the XLA count adds the small programs around it (start,
    key derivation, concatenation of records), also compiled once per shape."""
    key = jax.random.key(0)
    batch, _ = problems.sparse_regression_data(key, n=50, d=100, k=5, dtype=jnp.float32)
    net = problems.init_diagonal_net(key, 100, dtype=jnp.float32)
    loss_fn = lambda p: problems.diagonal_net_loss(p, batch)
    make = lambda learning_rate, beta2: ab.optim.adam(learning_rate, 0.9, beta2, 1e-8)
    rows = []
    for label, rates, betas in [("first grid", [1e-3, 3e-3, 1e-2, 3e-2], [0.9, 0.95, 0.99, 0.999]),
                                ("second grid, new values", [2e-3, 5e-3, 2e-2, 5e-2], [0.8, 0.85, 0.9, 0.95])]:
        programs = engine._advance_jit._cache_size()
        count = count_compilations(lambda: ab.sweep(make, loss_fn, net, 200, grid={
            "learning_rate": rates, "beta2": betas}, save_every=20).trajectory.loss)
        rows.append({"ab.sweep, 16 points, diagonal net d=100": label,
                     "training programs compiled": engine._advance_jit._cache_size() - programs,
                     "XLA compilations (all, with small helpers)": count})
    return rows


def main(base_steps: int, repeats: int, rounds: int, only: str) -> None:
    rows = []
    for name, (loss_fn, params, steps_factor) in problems_under_test().items():
        if only and only not in name:
            continue
        num_steps = base_steps * steps_factor
        adam = ab.optim.adam(1e-3, 0.9, 0.999, 1e-8)
        optax_adam = optax.adam(1e-3, 0.9, 0.999, eps=0.0, eps_root=1e-8)
        times = interleaved_best_times({
            "floor": grad_floor(loss_fn, params, num_steps),
            "adam": scan_steps(loss_fn, adam, params, num_steps),
            "optax": scan_steps(loss_fn, optax_adam, params, num_steps),
            "run": lambda: ab.run(adam, loss_fn, params, num_steps, save_every=num_steps,
                                  save_params=False).loss,
            "run, 10 records": lambda: ab.run(adam, loss_fn, params, num_steps, save_every=num_steps // 10,
                                              save_params=False).loss,
        }, repeats, rounds)
        floor = times["floor"]
        rows.append({
            "problem": name, "steps": num_steps, "floor scan (s)": floor,
            "ab.optim.adam / grad": times["adam"] / floor, "optax.adam / grad": times["optax"] / floor,
            "ab.run(adam) / grad": times["run"] / floor,
            "ab.run(adam), 10 records / grad": times["run, 10 records"] / floor,
        })
    command = "python benchmarks/bench_step_overhead.py" + (f" --only '{only}'" if only else "")
    report("step_overhead" + (f"_{only.split()[0].lower()}" if only else ""), rows, command)
    report("sweep_compilations", compilation_rows(), command)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of best-of-repeats")
    parser.add_argument("--only", default="", help="run only the problems whose name contains this")
    args = parser.parse_args()
    main(args.steps, args.repeats, args.rounds, args.only)
