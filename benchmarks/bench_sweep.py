"""Sweeps against separate runs, as ratios measured in one process.

1. A 64-point hyperparameter grid: full-batch Adam on the diagonal net (d = 100, n = 50,
   float64), 8 learning rates × 8 values of β₂. Peers, timed in the same process:
     * 64 calls of ``ab.run`` with the hyperparameters baked into each optimizer (each call
       compiles: what a script that builds one optimizer per setting pays);
     * one jitted training function taking (h, β₂) as arguments, compiled once and called 64
       times (the best a sequential loop can do).
2. With every core: label-noise Adam (AGM form) on the diagonal net (d = 100, n = 50), 32
   seeds as one ``ab.sweep`` on one device and on all the host devices (``--devices``, set
   before JAX starts; default every core), against 32 sequential ``ab.run`` of one
   compiled program; the sweeps' records compared bit for bit. Warm timings, the variants
   taking turns.

    .venv/bin/python benchmarks/bench_sweep.py [--steps N] [--seeds S] [--devices N|auto] [--only PART]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys


def _arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--devices", default="auto", help="host devices (auto: every core)")
    parser.add_argument("--only", choices=("all", "grid", "cores"), default="all")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    args.devices = cores if args.devices == "auto" else int(args.devices)
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={args.devices}")
    return args


if __name__ == "__main__":
    ARGS = _arguments()   # before JAX starts

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.path.dirname(__file__))
from common import interleaved_best_times, once, report  # noqa: E402

import adabias as ab  # noqa: E402
from adabias import problems  # noqa: E402


def grid_rows(num_steps: int) -> None:
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
    report("sweep_64", rows, f"python benchmarks/bench_sweep.py --steps {num_steps} --only grid")


def cores_rows(num_steps: int, num_seeds: int) -> None:
    batch, _ = problems.sparse_regression_data(jax.random.key(0), n=50, d=100, k=5,
                                               features="gaussian")
    batches = jax.tree.map(lambda x: x[None], batch)
    params0 = problems.init_diagonal_net(jax.random.key(1), 100, 0.5)
    noise = problems.label_noise(0.5)
    optimizer = ab.optim.agm(0.004, 0.9, 0.95, ab.optim.diagonal, ab.optim.inverse_root(1e-8))
    make = lambda learning_rate: ab.optim.agm(learning_rate, 0.9, 0.95, ab.optim.diagonal,  # noqa: E731
                                              ab.optim.inverse_root(1e-8))
    key, save = jax.random.key(2), num_steps // 10
    sweep = lambda devices: ab.sweep(  # noqa: E731
        make, problems.diagonal_net_loss, params0, num_steps, grid={"learning_rate": [0.004]},
        num_seeds=num_seeds, key=key, batches=batches, noise=noise, save_every=save,
        devices=devices).trajectory.loss
    sequential = lambda: [ab.run(optimizer, problems.diagonal_net_loss, params0, num_steps,  # noqa: E731
                                 batches=batches, noise=noise, key=jax.random.fold_in(key, s),
                                 save_every=save).loss for s in range(num_seeds)]
    everything = jax.devices()
    runs = {"one device": lambda: sweep(everything[:1]), "all": lambda: sweep(everything),
            "sequential": sequential}
    for run in runs.values():   # compile
        once(run)
    best = interleaved_best_times(runs, 2, rounds=3)
    one, many = np.asarray(sweep(everything[:1])), np.asarray(sweep(everything))
    rows = [
        {"method": f"{num_seeds} × ab.run, one compiled program", "seconds": best["sequential"],
         "seeds/s": num_seeds / best["sequential"], "/ sequential": 1.0},
        {"method": f"ab.sweep, {num_seeds} seeds, 1 device", "seconds": best["one device"],
         "seeds/s": num_seeds / best["one device"], "/ sequential": best["sequential"] / best["one device"]},
        {"method": f"ab.sweep, {num_seeds} seeds, {len(everything)} devices", "seconds": best["all"],
         "seeds/s": num_seeds / best["all"], "/ sequential": best["sequential"] / best["all"]},
        {"method": "records of the two sweeps bit for bit equal", "seconds": "—",
         "seeds/s": "—", "/ sequential": bool(np.array_equal(one, many))},
    ]
    report("sweep_cores", rows, f"python benchmarks/bench_sweep.py --steps {num_steps} --seeds "
                                f"{num_seeds} --devices {len(everything)} --only cores")


def main(args) -> None:
    if args.only in ("all", "grid"):
        grid_rows(args.steps)
    if args.only in ("all", "cores"):
        cores_rows(args.steps * 10, args.seeds)


if __name__ == "__main__":
    main(ARGS)
