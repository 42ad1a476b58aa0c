"""A 64-point hyperparameter grid: one ``ab.sweep`` against 64 separate jitted runs.

Problem: full-batch Adam on the diagonal net (d = 100, n = 50, float64), grid of 8 learning
rates × 8 values of β₂. Peers, timed in the same process:
  * 64 calls of ``ab.run`` with the hyperparameters baked into each optimizer (each call
    compiles: what a script that builds one optimizer per setting pays);
  * one jitted training function taking (h, β₂) as arguments, compiled once and called 64
    times (the best a sequential loop can do).

    .venv/bin/python benchmarks/bench_sweep.py [--steps N]
"""

from __future__ import annotations

import argparse
import itertools
import sys

import jax
import jax.numpy as jnp
import optax

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import once, report  # noqa: E402

import adabias as ab  # noqa: E402
from adabias import problems  # noqa: E402


def main(num_steps: int) -> None:
    key = jax.random.key(0)
    batch, _ = problems.sparse_regression_data(key, n=50, d=100, k=5)
    params0 = problems.init_diagonal_net(key, 100)
    loss_fn = lambda p: problems.diagonal_net_loss(p, batch)  # noqa: E731
    rates = [float(x) for x in jnp.geomspace(1e-3, 3e-2, 8)]
    beta2s = [0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995]
    grid = {"learning_rate": rates, "beta2": beta2s}
    make = lambda learning_rate, beta2: ab.optim.adam(learning_rate, 0.9, beta2, 1e-8)  # noqa: E731

    def run_sweep():
        return ab.sweep(make, loss_fn, params0, num_steps, grid=grid,
                        save_every=num_steps).trajectory.loss

    sweep_cold = once(run_sweep)
    sweep_warm = min(once(run_sweep) for _ in range(3))

    def separate_runs():
        return [ab.run(make(h, b2), loss_fn, params0, num_steps, save_every=num_steps).loss
                for h, b2 in itertools.product(rates, beta2s)]

    separate = once(separate_runs)

    @jax.jit
    def train(h, b2):
        opt = optax.adam(h, 0.9, b2, eps=0.0, eps_root=1e-8)

        def body(carry, _):
            p, s = carry
            g = jax.grad(loss_fn)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (p, _), _ = jax.lax.scan(body, (params0, opt.init(params0)), None, length=num_steps)
        return loss_fn(p)

    once(lambda: train(rates[0], beta2s[0]))  # compile
    looped = min(once(lambda: [train(h, b2) for h, b2 in itertools.product(rates, beta2s)])
                 for _ in range(3))
    rows = [
        {"method": "ab.sweep, 64 points (first call, with compilation)", "seconds": sweep_cold,
         "speed-up of ab.sweep (warm)": sweep_cold / sweep_warm},
        {"method": "ab.sweep, 64 points (warm)", "seconds": sweep_warm,
         "speed-up of ab.sweep (warm)": 1.0},
        {"method": "64 × ab.run, one optimizer per setting (each compiles)", "seconds": separate,
         "speed-up of ab.sweep (warm)": separate / sweep_warm},
        {"method": "64 × one jitted train(h, β₂), compiled once (warm)", "seconds": looped,
         "speed-up of ab.sweep (warm)": looped / sweep_warm},
    ]
    report("sweep_64", rows, f"python benchmarks/bench_sweep.py --steps {num_steps}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    main(parser.parse_args().steps)
