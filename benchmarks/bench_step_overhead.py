"""Cost of an optimizer step over the cost of a gradient evaluation, in the same scan.

Floor: a bare ``lax.scan`` whose body is one gradient evaluation and θ ← θ − h·g. Compared:
the same scan with optax/adabias Adam instead, and ``ab.run`` (which adds divergence checks
and loss records). Ratio 1 is the floor; the target is ≤ 1.3.

    .venv/bin/python benchmarks/bench_step_overhead.py [--steps N]
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import best_time, report  # noqa: E402

import adabias as ab  # noqa: E402
from adabias import problems  # noqa: E402


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


def main(base_steps: int, repeats: int) -> None:
    rows = []
    for name, (loss_fn, params, steps_factor) in problems_under_test().items():
        num_steps = base_steps * steps_factor
        floor = best_time(grad_floor(loss_fn, params, num_steps), repeats)
        adam = ab.optim.adam(1e-3, 0.9, 0.999, 1e-8)
        optax_adam = optax.adam(1e-3, 0.9, 0.999, eps=0.0, eps_root=1e-8)
        t_adam = best_time(scan_steps(loss_fn, adam, params, num_steps), repeats)
        t_optax = best_time(scan_steps(loss_fn, optax_adam, params, num_steps), repeats)
        t_run = best_time(lambda: ab.run(adam, loss_fn, params, num_steps, save_every=num_steps,
                                         save_params=False).loss, repeats)
        rows.append({
            "problem": name, "steps": num_steps, "floor scan (s)": floor,
            "ab.optim.adam / grad": t_adam / floor, "optax.adam / grad": t_optax / floor,
            "ab.run(adam) / grad": t_run / floor,
        })
    report("step_overhead", rows, "python benchmarks/bench_step_overhead.py")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    main(args.steps, args.repeats)
