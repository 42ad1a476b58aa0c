"""Timing helpers shared by the benchmarks: best-of-k wall time, results as JSON + Markdown.

Every benchmark measures a ratio against a baseline timed in the same process, because the
machines are shared and noisy; absolute times are printed for context only.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import jax

RESULTS = Path(__file__).parent / "results"


def block(tree: Any) -> Any:
    return jax.tree.map(lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x, tree)


def best_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Minimum wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        block(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved_best_times(fns: dict, repeats: int, rounds: int = 3) -> dict:
    """Best time of each ``fn`` over ``rounds`` rounds of ``best_time(fn, repeats)``, the
    variants taking turns in every round, so a burst of load elsewhere hits all of them."""
    times = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name] = min(times[name], best_time(fn, repeats))
    return times


def once(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    block(fn())
    return time.perf_counter() - start


def machine() -> str:
    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return (f"{platform.machine()} {os.cpu_count()} cores, {devices}, JAX {jax.__version__}, "
            f"Python {platform.python_version()}")


def report(name: str, rows: list[dict], command: str) -> None:
    """Print rows as a Markdown table and save them to benchmarks/results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    payload = {"benchmark": name, "command": command, "machine": machine(), "rows": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1))
    columns = list(rows[0])
    print(f"\n### {name}\n\n`{command}` on {payload['machine']}\n")
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("---" for _ in columns) + " |")
    for row in rows:
        print("| " + " | ".join(_cell(row[c]) for c in columns) + " |")


def _cell(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)
