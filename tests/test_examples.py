"""Every script in examples/ runs, at tiny sizes, and prints what it says it prints.

Each example runs in its own process, as a user would run it (and so that one example's
``jax_enable_x64`` does not leak into the others), calling its ``main`` with small sizes.
The processes run two at a time; most of their time is JAX compiling the training programs.
"""

import concurrent.futures
import math
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"

# script -> the call of its main at tiny sizes
TINY = {
    "own_loss": "main(num_steps=40, save_every=20)",
    "equinox_model": "main(num_steps=40, save_every=20)",
    "sweep": "main(num_steps=40, save_every=20, num_seeds=2, learning_rates=(1e-2, 1e-1), beta2s=(0.99,))",
    "modified_flow_order": "main()",
    "label_noise_sharpness": "main(num_steps=2_000, save_every=500)",
}


def _run(name: str) -> subprocess.CompletedProcess:
    code = f"import sys; sys.path.insert(0, {str(EXAMPLES)!r}); import {name}; {name}.{TINY[name]}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ))


@pytest.fixture(scope="module")
def outputs() -> dict:
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(TINY, pool.map(_run, TINY)))


def output(outputs: dict, name: str) -> str:
    done = outputs[name]
    assert done.returncode == 0, f"examples/{name}.py failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d+(?:e[-+]\d+)?", text)]


def table_rows(text: str) -> list[list[str]]:
    """The lines that start with a step number followed by a number."""
    return [line.split() for line in text.splitlines() if re.match(r"\s*\d+\s+\d", line)]


def test_every_example_is_tested():
    assert {path.stem for path in EXAMPLES.glob("*.py")} == set(TINY)


def test_own_loss(outputs):
    out = output(outputs, "own_loss")
    assert "‖∇E‖₁,ε" in out and "diverged_at: -1" in out
    rows = table_rows(out)
    assert [int(row[0]) for row in rows] == [0, 20, 40]
    losses = [float(row[1]) for row in rows]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    # ‖∇E‖₁,ε ≥ ‖∇E‖₁ at every saved step
    assert all(float(row[2]) >= float(row[3]) for row in rows)


def test_equinox_model(outputs):
    """Whichever path is available: equinox's when it is installed, else the hand-made one."""
    out = output(outputs, "equinox_model")
    try:
        import equinox  # noqa: F401
        assert "eqx.nn.MLP, 321 parameters" in out
    except ImportError:
        assert "hand-made pytree MLP, 321 parameters" in out
    rows = table_rows(out)
    losses = [float(row[1]) for row in rows]
    assert len(rows) == 3 and losses[-1] < losses[0]
    assert all(float(row[2]) > 0 for row in rows)  # λ_max(H) of this fit is positive


def test_equinox_model_without_equinox_partitions_and_combines_a_pytree():
    """The fallback's partition/combine split a pytree model as eqx.partition/combine do."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import equinox_model as example
    finally:
        sys.path.remove(str(EXAMPLES))
    model = example.make_mlp(jax.random.key(0))
    arrays, static = example.partition(model)
    assert static["activation"] is jnp.tanh and arrays["activation"] is None
    assert all(leaf is None for leaf in jax.tree.leaves(static["layers"], is_leaf=lambda x: x is None))
    rebuilt = example.combine(arrays, static)
    x = jnp.array([0.3])
    assert jnp.allclose(example.apply_mlp(rebuilt, x), example.apply_mlp(model, x))
    assert example.apply_mlp(model, x).shape == (1,)


def test_sweep(outputs):
    out = output(outputs, "sweep")
    assert "4 members = grid (2, 1) × 2 seeds" in out
    assert len(re.findall(r"^\s*1e-0[12]\s+0\.990\s+[01]\s", out, re.M)) == 4
    assert all(math.isfinite(x) for x in numbers(out))


def test_modified_flow_order(outputs):
    out = output(outputs, "modified_flow_order")
    order1, order0 = (float(x) for x in re.findall(r"fitted order (-?\d+\.\d+)", out))
    assert abs(order1 - 2.0) < 0.1 and abs(order0 - 1.0) < 0.3


def test_label_noise_sharpness(outputs):
    out = output(outputs, "label_noise_sharpness")
    exact, closed = (float(x) for x in re.search(r"exact (\d+\.\d+), closed form (\d+\.\d+)", out).groups())
    assert exact == pytest.approx(closed, rel=1e-6)
    assert len(table_rows(out.replace("step ", ""))) == 5  # steps 0, 500, …, 2000
    assert "SGD" in out and "Adam" in out and all(math.isfinite(x) for x in numbers(out))
