"""Cost of streaming records out of a run (``on_record``) over the same run without it.

Full-batch Adam on the diagonal net (d = 1000, n = 50, float32), as in
``bench_step_overhead.py``. Variants, timed in interleaved rounds in one process: the plain
run (no callback in its program), a no-op ``on_record`` (the cost of the ordered
``jax.debug.callback`` and the host round trip per saved step), and ``CSVStream`` (a row
appended and flushed per saved step, per member in a sweep). Also the cost of writing the
finished records with ``to_csv``.

    .venv/bin/python benchmarks/bench_records.py [--steps N] [--repeats K] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import best_time, interleaved_best_times, report  # noqa: E402

import adabias as ab  # noqa: E402
from adabias import problems  # noqa: E402


def main(num_steps: int, repeats: int, rounds: int) -> None:
    key = jax.random.key(0)
    batch, _ = problems.sparse_regression_data(key, n=50, d=1000, k=5, dtype=jnp.float32)
    params = problems.init_diagonal_net(key, 1000, dtype=jnp.float32)
    loss_fn = lambda p: problems.diagonal_net_loss(p, batch)  # noqa: E731
    metrics = {"norm": lambda p: jnp.sum(p["u"] ** 2 + p["v"] ** 2)}
    adam = ab.optim.adam(1e-3, 0.9, 0.999, 1e-8)
    make = lambda learning_rate: ab.optim.adam(learning_rate, 0.9, 0.999, 1e-8)  # noqa: E731
    grid = {"learning_rate": [float(x) for x in np.geomspace(1e-4, 1e-2, 16)]}
    folder = tempfile.mkdtemp(prefix="bench_records.")
    streams = {}

    def csv_stream(name):  # one file per variant, appended to across repeats
        if name not in streams:
            streams[name] = ab.engine.CSVStream(os.path.join(folder, f"{name}.csv"))
        return streams[name]

    rows = []
    for label, runner in [("ab.run", lambda **kw: ab.run(adam, loss_fn, params, num_steps, **kw).loss),
                          ("ab.sweep, 16 members", lambda **kw: ab.sweep(make, loss_fn, params, num_steps,
                                                                          grid=grid, **kw).trajectory.loss)]:
        for save_every in (num_steps // 10, num_steps // 100):
            common = dict(save_every=save_every, metrics=metrics, save_params=False)
            name = f"{label.split(',')[0]}_{save_every}"
            times = interleaved_best_times({
                "plain": lambda: runner(**common),
                "no-op": lambda: runner(**common, on_record=lambda step, row: None),
                "csv": lambda: runner(**common, on_record=csv_stream(name)),
            }, repeats, rounds)
            result = (ab.run(adam, loss_fn, params, num_steps, **common) if label == "ab.run"
                      else ab.sweep(make, loss_fn, params, num_steps, grid=grid, **common))
            path = os.path.join(folder, "table.csv")
            to_csv = best_time(lambda: result.to_csv(path), repeats)
            rows.append({
                "run": label, "steps": num_steps, "saved steps": num_steps // save_every + 1,
                "plain (s)": times["plain"], "no-op on_record / plain": times["no-op"] / times["plain"],
                "CSVStream / plain": times["csv"] / times["plain"],
                "no-op on_record per saved step (µs)": (times["no-op"] - times["plain"]) / (num_steps // save_every + 1) * 1e6,
                "to_csv afterwards / plain": to_csv / times["plain"],
            })
    for stream in streams.values():
        stream.close()
    report("records", rows, "python benchmarks/bench_records.py")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of best-of-repeats")
    args = parser.parse_args()
    main(args.steps, args.repeats, args.rounds)
