"""The engine under bad inputs and faults: checkpoints that cannot be mixed up or half
written, sweep members that do not depend on each other, parameter pytrees that are not
arrays (equinox/flax models)."""

import dataclasses
import os
import subprocess
import sys
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adabias as ab
from adabias.engine import CheckpointError, CheckpointMismatch, checkpoint as checkpoint_module, driver

jax.config.update("jax_enable_x64", True)

TARGET = jnp.array([1.0, -2.0, 0.5])
PARAMS0 = {"w": jnp.array([0.1, 0.2, -0.3]), "b": jnp.array(0.5)}
BATCHES = {"x": jax.random.normal(jax.random.key(0), (3, 4, 3)), "y": jax.random.normal(jax.random.key(1), (3, 4))}
KEY = jax.random.key(3)


def full_loss(params):
    return 0.5 * jnp.sum((params["w"] - TARGET) ** 2) + 0.1 * jnp.sum(params["w"] ** 4) + params["b"] ** 2


def batch_loss(params, batch):
    return 0.5 * jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)


def label_noise(key, batch):
    return {**batch, "y": batch["y"] + 0.5 * jax.random.rademacher(key, batch["y"].shape, dtype=batch["y"].dtype)}


def init(key):
    return {"w": 0.1 * jax.random.normal(key, (3,)), "b": jnp.array(0.0)}


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --- sweep members do not depend on each other --------------------------------------------------


def quartic(dtype):
    x = jax.random.normal(jax.random.key(0), (20, 8), dtype)
    y = jax.random.normal(jax.random.key(1), (20,), dtype)

    def loss(params):
        return 0.5 * jnp.mean((x @ params["w"] + params["b"] - y) ** 2) + 0.1 * jnp.sum(params["w"] ** 4)

    return loss, {"w": jnp.full(8, 0.1, dtype), "b": jnp.zeros((), dtype)}


HUGE = {jnp.float32: 1e30, jnp.float64: 1e100}  # a learning rate whose first step overflows p⁴


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
def test_a_diverging_member_leaves_the_others_bitwise_unchanged(dtype, save_every=16):
    loss, params0 = quartic(dtype)
    make = lambda learning_rate, beta2: ab.optim.adam(learning_rate, 0.9, beta2, 1e-8)  # noqa: E731
    sweep = lambda rates: ab.sweep(make, loss, params0, 64, grid={"learning_rate": rates, "beta2": [0.9, 0.99]},  # noqa: E731
                                   save_every=save_every)
    with pytest.warns(RuntimeWarning, match="2 of 6 sweep members diverged"):
        with_divergence = sweep([0.01, 0.03, HUGE[dtype]])
    without = sweep([0.01, 0.03, 0.02])
    diverged = np.asarray(with_divergence.trajectory.diverged_at)
    assert (diverged[:4] == -1).all() and (diverged[4:] >= 0).all()
    survivors = lambda result: jax.tree.map(lambda x: x[:4], result.trajectory)  # noqa: E731
    assert_trees_equal(survivors(with_divergence), survivors(without))
    rtol = 1e-5 if dtype == jnp.float32 else 1e-12
    for i, (learning_rate, beta2) in [(3, (0.03, 0.99)), (4, (HUGE[dtype], 0.9))]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            single = ab.run(make(learning_rate, beta2), loss, params0, 64, save_every=save_every)
        member = with_divergence.member(i)
        assert int(member.diverged_at) == int(single.diverged_at)
        np.testing.assert_allclose(member.params["w"], single.params["w"], rtol=rtol, atol=rtol * 1e-2)


def test_members_diverging_in_different_blocks_with_noise_leave_the_others_unchanged():
    make = lambda learning_rate: ab.optim.heavy_ball(learning_rate, 0.5)  # noqa: E731
    params0 = jax.tree.map(lambda x: x.astype(jnp.float32), PARAMS0)
    batches = jax.tree.map(lambda x: x.astype(jnp.float32), BATCHES)
    loss = lambda p, batch: batch_loss(p, batch) + 0.1 * jnp.sum(p["w"] ** 4)  # noqa: E731
    sweep = lambda rates: ab.sweep(make, loss, params0, 48, grid={"learning_rate": rates}, num_seeds=2,  # noqa: E731
                                   key=KEY, batches=batches, noise=label_noise, save_every=8)
    with pytest.warns(RuntimeWarning, match="sweep members diverged"):
        with_divergence = sweep([0.05, 6.0, 0.1, 30.0])
    without = sweep([0.05, 0.2, 0.1, 0.3])
    diverged = np.asarray(with_divergence.trajectory.diverged_at).reshape(4, 2)
    assert (diverged[[0, 2]] == -1).all() and (diverged[[1, 3]] >= 0).all()
    keep = np.array([0, 1, 4, 5])
    assert_trees_equal(jax.tree.map(lambda x: x[keep], with_divergence.trajectory),
                       jax.tree.map(lambda x: x[keep], without.trajectory))


# --- parameters that are not arrays (equinox / flax models) -----------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Model:
    """Like an ``eqx.Module`` holding an activation: the function is a leaf; calling applies it."""

    w: jax.Array
    activation: Callable

    def __call__(self, x):
        return self.activation(x @ self.w)


@dataclasses.dataclass
class StaticModel:
    """Like an ``eqx.Module`` whose activation is a static field: callable, only array leaves."""

    w: jax.Array
    activation: Callable = jnp.tanh

    def __call__(self, x):
        return self.activation(x @ self.w)


jax.tree_util.register_dataclass(StaticModel, data_fields=["w"], meta_fields=["activation"])

X = jax.random.normal(jax.random.key(6), (5, 3))
Y = jnp.array([0.5, -0.2, 0.1, 0.3, -0.4])


def model_loss(model):
    return 0.5 * jnp.mean((model(X) - Y) ** 2)


def test_a_callable_model_with_array_leaves_is_a_start_not_an_init_function():
    model = StaticModel(jnp.array([0.1, -0.2, 0.3]))
    make = lambda learning_rate: ab.optim.adam(learning_rate)  # noqa: E731
    result = ab.sweep(make, model_loss, model, 10, grid={"learning_rate": [0.01, 0.1]}, save_every=5)
    assert isinstance(result.trajectory.params, StaticModel)
    for i, learning_rate in enumerate([0.01, 0.1]):
        single = ab.run(make(learning_rate), model_loss, model, 10, save_every=5)
        np.testing.assert_allclose(result.member(i).params.w, single.params.w, rtol=1e-12)


NOT_ARRAYS = {
    "a function leaf (equinox activation)": (Model(jnp.array([0.1, -0.2, 0.3]), jax.nn.relu), r"\.activation.*eqx\.partition"),
    "a string leaf": ({"w": jnp.zeros(3), "name": "layer"}, r"\['name'\].*eqx\.partition"),
    "an object leaf": ({"w": jnp.zeros(3), "rng": np.random.default_rng(0)}, r"not arrays.*\['rng'\]"),
    "an integer leaf": ({"w": jnp.zeros(3), "b": 0}, r"not floating point.*\['b'\]"),
    "an integer array": ({"w": jnp.arange(3)}, r"not floating point.*\['w'\]"),
    "a boolean mask": ({"w": jnp.zeros(3), "mask": jnp.array([True, False, True])}, r"not floating point.*\['mask'\]"),
    "a PRNG key": ({"w": jnp.zeros(3), "key": jax.random.key(0)}, r"not floating point.*\['key'\]"),
    "None": (None, "no array leaves"),
    "an empty dict": ({}, "no array leaves"),
    "a function": (init, "init_params"),
}


@pytest.mark.parametrize("case", list(NOT_ARRAYS))
def test_parameters_that_are_not_float_arrays_are_named(case):
    params0, message = NOT_ARRAYS[case]
    loss = lambda p: jnp.sum(jnp.asarray(jax.tree.leaves(p)[0], float) ** 2)  # noqa: E731
    with pytest.raises(ValueError, match=message) as error:
        ab.run(ab.optim.gd(0.1), loss, params0, 2)
    assert "loss_fn could not be called" not in str(error.value)
    with pytest.raises(ValueError, match=message):
        ab.sweep(lambda learning_rate: ab.optim.gd(learning_rate), loss, params0, 2,
                 grid={"learning_rate": [0.1]})


def test_init_params_draws_each_seed_start_and_is_explicit():
    make = lambda learning_rate: ab.optim.gd(learning_rate)  # noqa: E731
    result = ab.sweep(make, full_loss, None, 4, grid={"learning_rate": [0.1]}, num_seeds=3, key=KEY,
                      init_params=init)
    starts = np.asarray(result.trajectory.params["w"][:, 0])
    assert len({tuple(row) for row in starts.round(12)}) == 3
    expected = init(jax.random.fold_in(jax.random.fold_in(KEY, 2), 1))
    np.testing.assert_array_equal(starts[2], expected["w"])
    with pytest.raises(ValueError, match="not both"):
        ab.sweep(make, full_loss, PARAMS0, 4, grid={"learning_rate": [0.1]}, init_params=init)
    with pytest.raises(ValueError, match="init_params must be a function"):
        ab.sweep(make, full_loss, None, 4, grid={"learning_rate": [0.1]}, init_params=PARAMS0)
    with pytest.raises(ValueError, match=r"init_params\(key\).*eqx\.partition"):
        ab.sweep(make, model_loss, None, 4, grid={"learning_rate": [0.1]},
                 init_params=lambda key: Model(jax.random.normal(key, (3,)), jax.nn.relu))
    with pytest.raises(ValueError, match=r"not floating point: init_params\(key\)\['b'\]"):
        ab.sweep(make, full_loss, None, 4, grid={"learning_rate": [0.1]},
                 init_params=lambda key: {"w": jax.random.normal(key, (3,)), "b": jnp.array(0)})


# --- checkpoints: a file belongs to one run ---------------------------------------------------


def base_run(**changes):
    arguments = dict(optimizer=ab.optim.adam(1e-3), loss_fn=batch_loss, params0=PARAMS0, num_steps=8,
                     batches=BATCHES, noise=label_noise, key=KEY, save_every=2, metrics=None)
    arguments.update(changes)
    return arguments


def base_sweep(**changes):
    arguments = dict(make_optimizer=lambda learning_rate: ab.optim.adam(learning_rate, 0.9, 0.99),
                     loss_fn=batch_loss, params0=PARAMS0, num_steps=8, grid={"learning_rate": [1e-3, 1e-2]},
                     num_seeds=2, key=KEY, batches=BATCHES, noise=label_noise, save_every=2)
    arguments.update(changes)
    return arguments


RUN_CHANGES = {
    "learning rate 1e-2": (dict(optimizer=ab.optim.adam(1e-2)), "program"),
    "optimizer": (dict(optimizer=ab.optim.rmsprop(1e-3)), "program"),
    "eps": (dict(optimizer=ab.optim.adam(1e-3, eps=1e-6)), "program"),
    "loss_fn": (dict(loss_fn=lambda p, batch: 2.0 * batch_loss(p, batch)), "program"),
    "noise": (dict(noise=lambda key, batch: label_noise(key, {**batch, "y": 2 * batch["y"]})), "program"),
    "metrics": (dict(metrics={"w0": lambda p: p["w"][0]}), "program"),
    "params0": (dict(params0={**PARAMS0, "b": jnp.array(0.25)}), "params0"),
    "params0 dtype": (dict(params0=jax.tree.map(lambda x: x.astype(jnp.float32), PARAMS0)), "program"),
    "key": (dict(key=jax.random.key(4)), "key"),
    "batches": (dict(batches={**BATCHES, "y": BATCHES["y"] + 1.0}), "batches"),
    "num_steps": (dict(num_steps=10), "steps"),
    "save_every": (dict(save_every=4), "program"),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A finished checkpointed run and a finished checkpointed sweep, each in its file."""
    folder = tmp_path_factory.mktemp("written")
    run_path, sweep_path = folder / "run.npz", folder / "sweep.npz"
    run = ab.run(**base_run(), checkpoint=run_path)
    swept = ab.sweep(**base_sweep(), checkpoint=sweep_path)
    return run_path, run, sweep_path, swept


@pytest.mark.parametrize("change", list(RUN_CHANGES))
def test_a_run_refuses_the_checkpoint_of_another_run(written, change):
    run_path = written[0]
    arguments, component = RUN_CHANGES[change]
    before = run_path.read_bytes()
    with pytest.raises(CheckpointMismatch, match="different run") as error:
        ab.run(**base_run(**arguments), checkpoint=run_path)
    assert component in error.value.differs
    assert str(run_path) in str(error.value)
    assert isinstance(error.value, ValueError)
    assert run_path.read_bytes() == before  # the other run's file is left as it was


SWEEP_CHANGES = {
    "beta1 closed over": (dict(make_optimizer=lambda learning_rate: ab.optim.adam(learning_rate, 0.8, 0.99)), "program"),
    "grid values": (dict(grid={"learning_rate": [1e-3, 2e-2]}), "grid"),
    "num_seeds": (dict(num_seeds=3), "key"),
    "params0": (dict(params0={**PARAMS0, "w": PARAMS0["w"] + 1.0}), "params0"),
    "init_params": (dict(params0=None, init_params=init), "program"),
    "key": (dict(key=jax.random.key(5)), "key"),
    "loss_fn": (dict(loss_fn=lambda p, batch: batch_loss(p, batch) + 1e-3 * jnp.sum(p["w"] ** 2)), "program"),
}


@pytest.mark.parametrize("change", list(SWEEP_CHANGES))
def test_a_sweep_refuses_the_checkpoint_of_another_sweep(written, change):
    sweep_path = written[2]
    arguments, component = SWEEP_CHANGES[change]
    with pytest.raises(CheckpointMismatch, match="different run") as error:
        ab.sweep(**base_sweep(**arguments), checkpoint=sweep_path)
    assert component in error.value.differs


def test_another_init_function_is_refused(tmp_path):
    path = tmp_path / "init.npz"
    ab.sweep(**base_sweep(params0=None, init_params=init), checkpoint=path)
    other = lambda key: jax.tree.map(lambda x: 2 * x, init(key))  # noqa: E731
    with pytest.raises(CheckpointMismatch, match="initial parameters") as error:
        ab.sweep(**base_sweep(params0=None, init_params=other), checkpoint=path)
    assert error.value.differs == ("params0",)


def test_the_same_run_with_new_function_objects_reuses_its_checkpoint(written, monkeypatch):
    """Equal programs, rebuilt from scratch (new lambdas, new optimizer), resume: nothing runs."""
    run_path, run, sweep_path, swept = written
    original = driver._advance_jit

    def no_chunk(*args, **kwargs):
        raise AssertionError("a chunk ran although the checkpoint holds the finished run")

    no_chunk.lower = original.lower
    monkeypatch.setattr(driver, "_advance_jit", no_chunk)
    again = ab.run(**base_run(optimizer=ab.optim.adam(1e-3), loss_fn=lambda p, b: batch_loss(p, b)),
                   checkpoint=run_path)
    assert_trees_equal(again, run)
    again = ab.sweep(**base_sweep(), checkpoint=sweep_path)
    assert_trees_equal(again.trajectory, swept.trajectory)


def test_the_checkpoint_of_a_run_holds_its_result(written):
    run_path, run = written[:2]
    plain = ab.run(**base_run())
    np.testing.assert_allclose(run.params["w"], plain.params["w"], rtol=1e-12)
    assert sorted(os.listdir(run_path.parent)) == ["run.npz", "sweep.npz"]  # no temporary files left


# --- checkpoints: unreadable files and unwritable paths are named ---------------------------------


def valid_bytes(written):
    return written[0].read_bytes()


@pytest.mark.parametrize("content", ["garbage", "empty", "truncated", "cut short", "npy", "other npz",
                                     "flipped bytes"])
def test_a_damaged_checkpoint_is_named(tmp_path, written, content):
    path = tmp_path / "run.npz"
    valid = valid_bytes(written)
    if content == "garbage":
        path.write_bytes(b"not a checkpoint at all\n" * 10)
    elif content == "empty":
        path.write_bytes(b"")
    elif content == "truncated":
        path.write_bytes(valid[: len(valid) // 2])
    elif content == "cut short":
        path.write_bytes(valid[:-30])
    elif content == "npy":
        with open(path, "wb") as file:
            np.save(file, np.zeros(3))
    elif content == "other npz":
        with open(path, "wb") as file:
            np.savez(file, x=np.zeros(3))
    else:  # a byte flipped inside the stored arrays: the zip's CRC check fails
        damaged = bytearray(valid)
        damaged[len(valid) // 2] ^= 0xFF
        path.write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match=str(path).replace("\\", "\\\\")) as error:
        ab.run(**base_run(), checkpoint=path)
    assert content != "other npz" or isinstance(error.value, CheckpointMismatch)


def no_work(*args, **kwargs):
    raise AssertionError("work started before the checkpoint path was checked")


@pytest.mark.parametrize("where", ["missing folder", "folder", "inside a file", "not a path", "empty",
                                   "unwritable"])
def test_a_checkpoint_path_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch, where):
    (tmp_path / "file.txt").write_text("x")
    path = {"missing folder": tmp_path / "no" / "such" / "run.npz", "folder": tmp_path,
            "inside a file": tmp_path / "file.txt" / "run.npz", "not a path": 3.5, "empty": "",
            "unwritable": tmp_path / "run.npz"}[where]
    if where == "unwritable":  # root may write anywhere: the folder refuses through its files
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(checkpoint_module.tempfile, "TemporaryFile", refuse)
    monkeypatch.setattr(driver, "_start_jit", no_work)
    monkeypatch.setattr(driver, "build_program", no_work)
    with pytest.raises(CheckpointError, match="checkpoint"):
        ab.run(**base_run(), checkpoint=path)
    with pytest.raises(CheckpointError, match="checkpoint"):
        ab.sweep(**base_sweep(make_optimizer=no_work), checkpoint=path)


# --- checkpoints: kill -9 at any point resumes to the uninterrupted result ----------------------


KILLED_SWEEP = r"""
import os, signal, sys
import jax
jax.config.update("jax_enable_x64", True)
import adabias as ab
from adabias.engine import checkpoint as checkpoint_module
sys.path.insert(0, os.path.dirname(sys.argv[3]))
from test_engine_reliability import killed_sweep
mode, path = sys.argv[1:3]
calls = {"n": 0}
if mode == "after save":
    save = checkpoint_module.Checkpoint.save
    def killing(self, *args):
        save(self, *args)
        calls["n"] += 1
        if calls["n"] == 7:
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoint_module.Checkpoint.save = killing
else:  # killed after the temporary file is written, before it replaces the checkpoint
    replace = os.replace
    def killing(source, target):
        calls["n"] += 1
        if calls["n"] == 7:
            os.kill(os.getpid(), signal.SIGKILL)
        replace(source, target)
    checkpoint_module.os.replace = killing
killed_sweep(path)
raise SystemExit("not killed")
"""


def killed_sweep(path):
    """The sweep that :data:`KILLED_SWEEP` kills: seeds with their own starts, noise, batches."""
    loss = lambda p, batch: 0.5 * jnp.mean((batch["x"] @ p["w"] - batch["y"]) ** 2) + 0.1 * jnp.sum(p["w"] ** 4)  # noqa: E731
    make = lambda learning_rate: ab.optim.adam(learning_rate, 0.9, 0.99)  # noqa: E731
    return ab.sweep(make, loss, None, 40, grid={"learning_rate": [0.01, 0.05]}, num_seeds=2,
                    init_params=lambda key: {"w": jax.random.normal(key, (3,))}, key=jax.random.key(2),
                    batches=BATCHES, noise=label_noise, save_every=2, checkpoint=path)


@pytest.mark.parametrize("mode", [pytest.param("after save", marks=pytest.mark.slow), "inside save"])
def test_a_sweep_killed_at_any_point_resumes_bitwise_in_another_process(tmp_path, mode):
    path = str(tmp_path / "sweep.npz")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    killed = subprocess.run([sys.executable, "-c", KILLED_SWEEP, mode, path, __file__], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    with np.load(path) as data:  # the last complete file
        assert int(data["done_chunks"]) == (7 if mode == "after save" else 6)
    resumed = killed_sweep(path)  # this process: the fingerprint is the same in a new process
    whole = killed_sweep(str(tmp_path / "whole.npz"))
    assert_trees_equal(resumed.trajectory, whole.trajectory)
