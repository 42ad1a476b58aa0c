"""Records out of the engine: CSV and DataFrames, streaming with on_record, progress bars."""

import csv
import os
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adabias as ab
from adabias.engine import checkpoint as checkpoint_module
from adabias.engine import driver, loop
from adabias.engine import progress as progress_module
from adabias.experiments.base import Context

jax.config.update("jax_enable_x64", True)

TARGET = jnp.array([1.0, -2.0, 0.5])
PARAMS0 = {"w": jnp.array([0.1, 0.2, -0.3]), "b": jnp.array(0.5)}
OPT = ab.optim.adam(0.05)
METRICS = {"norm": lambda p: jnp.sum(p["w"] ** 2), "twice": lambda p: 2 * p["w"][:2]}
MAKE = lambda learning_rate, beta: ab.optim.heavy_ball(learning_rate, beta)  # noqa: E731
GRID = {"learning_rate": [0.05, 3.0], "beta": [0.0, 0.5]}  # learning_rate 3.0 diverges


def loss_fn(params):
    return 0.5 * jnp.sum((params["w"] - TARGET) ** 2) + 0.1 * jnp.sum(params["w"] ** 4) + params["b"] ** 2


def read_csv(path):
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    return rows[0], rows[1:]


def sweep(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the diverging members
        return ab.sweep(MAKE, loss_fn, PARAMS0, 20, grid=GRID, num_seeds=2, save_every=5,
                        metrics=METRICS, **kwargs)


@pytest.fixture(scope="module")
def run():
    return ab.run(OPT, loss_fn, PARAMS0, 20, save_every=5, metrics=METRICS)


@pytest.fixture(scope="module")
def result():
    return sweep()


# --- CSV and DataFrame -----------------------------------------------------------------------------


def test_trajectory_to_csv_has_one_row_per_saved_step_and_reads_back_exactly(run, tmp_path):
    run.to_csv(tmp_path / "run.csv")
    header, rows = read_csv(tmp_path / "run.csv")
    assert header == ["step", "loss", "diverged", "norm", "twice[0]", "twice[1]"]  # no params by default
    values = np.asarray(rows)
    np.testing.assert_array_equal(values[:, 0].astype(int), [0, 5, 10, 15, 20])
    np.testing.assert_array_equal(values[:, 1].astype(float), run.loss)  # float64 text round-trips
    assert set(values[:, 2]) == {"False"}
    np.testing.assert_array_equal(values[:, 4:].astype(float), run.metrics["twice"])

    run.to_csv(tmp_path / "params.csv", params=True)
    header, rows = read_csv(tmp_path / "params.csv")
    assert header[-4:] == ["params['b']", "params['w'][0]", "params['w'][1]", "params['w'][2]"]
    np.testing.assert_array_equal(np.asarray(rows)[:, -3:].astype(float), run.params["w"])


def test_sweep_to_csv_has_one_row_per_member_and_step_with_the_grid_values_as_given(result, tmp_path):
    result.to_csv(str(tmp_path / "sweep.csv"))
    header, rows = read_csv(tmp_path / "sweep.csv")
    assert header == ["step", "member", "learning_rate", "beta", "seed", "loss", "diverged", "norm",
                      "twice[0]", "twice[1]"]
    assert len(rows) == result.num_members * 5
    table = {name: np.asarray(rows)[:, j] for j, name in enumerate(header)}
    member = table["member"].astype(int)
    np.testing.assert_array_equal(member, np.repeat(np.arange(8), 5))
    np.testing.assert_array_equal(table["seed"].astype(int), np.tile(np.repeat([0, 1], 5), 4))
    assert list(table["learning_rate"][::10]) == ["0.05", "0.05", "3.0", "3.0"]
    np.testing.assert_array_equal(table["loss"].astype(float).reshape(8, 5)[:2], result.trajectory.loss[:2])
    # a diverged member: its rows after diverged_at repeat the last finite record
    diverged_at = np.asarray(result.trajectory.diverged_at)
    steps = table["step"].astype(int)
    np.testing.assert_array_equal(table["diverged"] == "True", (diverged_at[member] >= 0) & (steps > diverged_at[member]))
    assert (table["diverged"] == "True").any() and (table["diverged"] == "False").any()


def test_rows_and_point_report_the_grid_values_as_given_in_float32():
    with jax.enable_x64(False):
        float32 = ab.sweep(lambda learning_rate, beta2: ab.optim.adam(learning_rate, 0.9, beta2),
                           lambda p: jnp.sum(p ** 2), jnp.ones(2, jnp.float32), 2,
                           grid={"learning_rate": [0.1], "beta2": np.array([0.9, 0.99])})
    assert float32.hyperparams["beta2"].dtype == np.float32  # what the program was given
    assert [row["beta2"] for row in float32.rows()] == [0.9, 0.99]
    assert float32.point(1) == {"learning_rate": 0.1, "beta2": 0.99}
    assert type(float32.rows()[0]["learning_rate"]) is float


def test_to_csv_writes_atomically_and_names_a_missing_folder(run, tmp_path, monkeypatch):
    path = tmp_path / "run.csv"
    path.write_text("old\n")

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        run.to_csv(path)
    monkeypatch.undo()
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["run.csv"]  # no temporary left
    run.to_csv(path)
    assert path.read_text().startswith("step,loss")
    with pytest.raises(FileNotFoundError, match="folder .*missing does not exist"):
        run.to_csv(tmp_path / "missing" / "run.csv")


def test_bad_requests_for_records_name_what_is_wrong(tmp_path):
    unsaved = ab.run(OPT, loss_fn, PARAMS0, 2, save_params=False)
    with pytest.raises(ValueError, match="save_params=False"):
        unsaved.to_csv(tmp_path / "x.csv", params=True)
    clash = ab.run(OPT, loss_fn, PARAMS0, 2, metrics={"loss": loss_fn})
    with pytest.raises(ValueError, match="metric 'loss' has the name of another records column"):
        clash.to_csv(tmp_path / "x.csv")
    with pytest.raises(ValueError, match="metric 'seed'"):  # checked before the run
        ab.sweep(MAKE, loss_fn, PARAMS0, 2, grid=GRID, metrics={"seed": loss_fn}, on_record=print)
    with pytest.raises(ValueError, match="on_record must be a function"):
        ab.run(OPT, loss_fn, PARAMS0, 2, on_record="log.csv")


def test_to_dataframe_holds_the_csv_columns(run, result):
    pandas = pytest.importorskip("pandas")
    frame = result.to_dataframe()
    assert isinstance(frame, pandas.DataFrame) and len(frame) == 40
    assert list(frame.columns)[:5] == ["step", "member", "learning_rate", "beta", "seed"]
    np.testing.assert_array_equal(frame["loss"].to_numpy()[:5], result.trajectory.loss[0])
    assert frame["diverged"].dtype == bool
    np.testing.assert_array_equal(run.to_dataframe(params=True)["params['b']"], run.params["b"])


def test_to_dataframe_without_pandas_names_the_extra(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"adabias\[pandas\]"):
        run.to_dataframe()


# --- streaming ---------------------------------------------------------------------------------------


def test_on_record_streams_every_saved_step_and_leaves_the_result_unchanged(run):
    rows = []
    streamed = ab.run(OPT, loss_fn, PARAMS0, 20, save_every=5, metrics=METRICS,
                      on_record=lambda step, row: rows.append((step, row)))
    for a, b in zip(jax.tree.leaves(streamed), jax.tree.leaves(run)):
        np.testing.assert_array_equal(a, b)
    assert [step for step, _ in rows] == [0, 5, 10, 15, 20]
    assert list(rows[0][1]) == ["loss", "diverged", "norm", "twice"]
    np.testing.assert_array_equal([row["loss"] for _, row in rows], run.loss)
    np.testing.assert_array_equal(np.stack([row["twice"] for _, row in rows]), run.metrics["twice"])


def test_streamed_values_keep_their_dtypes_and_shapes():
    metrics = {"argmax": lambda p: jnp.argmax(p["w"]), "positive": lambda p: p["w"] > 0,
               "complex": lambda p: p["w"][:2] * (1 + 2j), "single": lambda p: p["w"].astype(jnp.float32),
               "matrix": lambda p: jnp.outer(p["w"], p["w"])}
    rows = []
    trajectory = ab.run(OPT, loss_fn, PARAMS0, 6, save_every=3, metrics=metrics,
                        on_record=lambda step, row: rows.append(row))
    for name, values in trajectory.metrics.items():
        streamed = np.stack([row[name] for row in rows])
        assert streamed.dtype == values.dtype, name
        np.testing.assert_array_equal(streamed, values)


def test_a_streaming_program_has_the_callback_and_a_plain_one_has_none():
    program = driver.build_program(loop.ConstantOptimizer(OPT), loss_fn, PARAMS0, 4, batches=None,
                                   noise=None, key=None, save_every=2, metrics=METRICS, save_params=True)
    carry, _ = driver._start_jit({}, PARAMS0, jax.random.key(0), None, program=program, vmapped=False,
                                 per_member_params=False)
    lower = lambda *sink, **mode: driver._advance_jit.lower(  # noqa: E731
        {}, carry, None, jnp.asarray(0, jnp.int32), *sink, program=program, vmapped=False,
        num_saves=2, **mode).as_text()
    assert "callback" not in lower()
    assert "callback" in lower(jnp.asarray(0, jnp.int32), stream="ordered")


def test_sinks_share_one_compiled_program_and_metric_functions_are_the_cache_key():
    before = driver._advance_jit._cache_size()
    for _ in range(2):  # a new sink each time, the same metric functions: compiled once
        ab.run(OPT, loss_fn, PARAMS0, 6, save_every=3, metrics=METRICS, on_record=lambda step, row: None)
        ab.run(OPT, loss_fn, PARAMS0, 6, save_every=3, metrics=METRICS)
    assert driver._advance_jit._cache_size() == before + 2  # with and without the callback
    ab.run(OPT, loss_fn, PARAMS0, 6, save_every=3, metrics={"norm": lambda p: jnp.sum(p["w"] ** 2)})
    assert driver._advance_jit._cache_size() == before + 3  # a new lambda compiles again


def test_csv_stream_of_a_sweep_writes_the_rows_of_to_csv_in_chunks(result, tmp_path):
    with ab.engine.CSVStream(tmp_path / "stream.csv") as sink:
        streamed = sweep(on_record=sink, progress=True)
    np.testing.assert_array_equal(streamed.trajectory.loss, result.trajectory.loss)
    result.to_csv(tmp_path / "table.csv")
    header, rows = read_csv(tmp_path / "stream.csv")
    assert (header, sorted(rows)) == (read_csv(tmp_path / "table.csv")[0], sorted(read_csv(tmp_path / "table.csv")[1]))
    assert [int(row[0]) for row in rows] == sorted(int(row[0]) for row in rows)  # in step order

    with ab.engine.CSVStream(tmp_path / "stream.csv") as sink:  # appending with the same header
        sink(25, dict(zip(header[1:], rows[0][1:])))
    assert len(read_csv(tmp_path / "stream.csv")[1]) == len(rows) + 1
    with ab.engine.CSVStream(tmp_path / "stream.csv") as sink, pytest.raises(ValueError, match="has the columns"):
        sink(0, {"loss": 1.0})


def test_a_resumed_run_streams_only_the_steps_it_computes(tmp_path):
    path = tmp_path / "run.npz"
    first = []
    ab.run(OPT, loss_fn, PARAMS0, 20, save_every=5, checkpoint=path, on_record=lambda s, r: first.append(s))
    again = []
    ab.run(OPT, loss_fn, PARAMS0, 20, save_every=5, checkpoint=path, on_record=lambda s, r: again.append(s))
    assert first == [0, 5, 10, 15, 20] and again == []


def test_an_error_in_on_record_is_raised_after_the_run_naming_the_step():
    steps = []

    def failing(step, row):
        steps.append(step)
        if step == 10:
            raise KeyError("no such column")

    with pytest.raises(RuntimeError, match="on_record raised KeyError at step 10") as error:
        ab.run(OPT, loss_fn, PARAMS0, 20, save_every=5, on_record=failing)
    assert steps == [0, 5, 10] and isinstance(error.value.__cause__, KeyError)


def test_tensorboard_stream_writes_one_run_per_sweep_member(tmp_path):
    if not any(_importable(name) for name in ("tensorboardX", "torch.utils.tensorboard")):
        pytest.skip("neither tensorboardX nor torch.utils.tensorboard is installed")
    with ab.engine.TensorBoardStream(tmp_path) as sink:
        ab.run(OPT, loss_fn, PARAMS0, 4, save_every=2, metrics=METRICS, on_record=sink)
        sweep(on_record=sink)
    top = _scalars(tmp_path)
    assert sorted(top["loss"]) == [0, 2, 4] and sorted(top) == ["diverged", "loss", "norm", "twice/0", "twice/1"]
    member = _scalars(tmp_path / "member3")
    assert member["seed"][0] == 1.0 and member["learning_rate"][0] == pytest.approx(0.05)
    assert sorted(member["loss"]) == [0, 5, 10, 15, 20]


def test_tensorboard_stream_without_a_writer_names_both_packages(tmp_path, monkeypatch):
    for name in ("tensorboardX", "torch", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match="tensorboardX .* torch.utils.tensorboard"):
        ab.engine.TensorBoardStream(tmp_path)


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _scalars(folder):
    """tag -> {step: value} from the event files in ``folder`` (TFRecord framing, Event protos)."""
    try:
        from tensorboardX.proto.event_pb2 import Event
    except ImportError:
        from tensorboard.compat.proto.event_pb2 import Event
    values = {}
    for name in os.listdir(folder):
        if "tfevents" not in name:
            continue
        data = open(os.path.join(folder, name), "rb").read()
        offset = 0
        while offset < len(data):
            length = int.from_bytes(data[offset:offset + 8], "little")
            event = Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 16 + length
            for value in event.summary.value:
                values.setdefault(value.tag, {})[event.step] = value.simple_value
    return values


SHARDED_STREAM = r"""
import warnings
import jax, jax.numpy as jnp, numpy as np
import adabias as ab
assert len(jax.devices()) == 2
rows = []
loss = lambda p: jnp.sum((p - 1.0) ** 2)
result = ab.sweep(lambda learning_rate: ab.optim.gd(learning_rate), loss, jnp.zeros(2), 20,
                  grid={"learning_rate": [0.1, 0.2]}, save_every=5,
                  on_record=lambda step, row: rows.append((step, int(row["member"]), float(row["loss"]))))
assert result.trajectory.loss.sharding.device_set == set(jax.devices())
expected = {(int(s), m, float(result.trajectory.loss[m, j])) for m in range(2)
            for j, s in enumerate(result.trajectory.steps[m])}
assert sorted(rows) == sorted(expected), (rows, expected)
print("streamed", len(rows))
"""


def test_a_sweep_sharded_over_two_devices_streams_every_row():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", SHARDED_STREAM], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "streamed 10" in out.stdout


# --- progress bars --------------------------------------------------------------------------------------


def test_nested_bars_take_separate_lines_and_say_when_they_compile(capsys):
    from tqdm.auto import tqdm

    seen = []

    def look(step, row):
        seen.append(sorted(abs(bar.pos) for bar in tqdm._instances))

    for _ in Context(progress=True).track(range(2), "outer"):
        ab.run(OPT, loss_fn, PARAMS0, 40, save_every=2, progress=True, on_record=look,
               metrics={"compiles": lambda p: jnp.sum(p["w"])})
    assert seen and all(positions == [0, 1] for positions in seen)
    assert len(tqdm._instances) == 0  # every bar closed
    err = capsys.readouterr().err
    assert "adabias (compiling…)" in err and "adabias:" in err and "outer" in err


def test_a_bar_is_closed_when_its_loop_raises():
    from tqdm.auto import tqdm

    with pytest.raises(ZeroDivisionError):
        for item in progress_module.track([1, 0], desc="failing"):
            1 / item
    with pytest.raises(KeyError):  # a metric that fails while the run is traced, under the bar
        ab.run(OPT, loss_fn, PARAMS0, 4, progress=True, metrics={"bad": lambda p: p["missing"]})
    assert len(tqdm._instances) == 0


TWO_PROCESS_STREAM = r"""
import sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address="127.0.0.1:" + sys.argv[2], num_processes=2,
                           process_id=int(sys.argv[1]))
import jax.numpy as jnp
import adabias as ab
rows = []
loss = lambda p: jnp.sum((p - 1.0) ** 2)
result = ab.sweep(lambda learning_rate: ab.optim.gd(learning_rate), loss, jnp.zeros(2), 20,
                  grid={"learning_rate": [0.1, 0.2]}, save_every=5,
                  on_record=lambda step, row: rows.append((step, int(row["member"]))))
print("process", jax.process_index(), "streamed", sorted(rows))
"""


@pytest.mark.slow
def test_a_sweep_over_two_processes_streams_every_row_in_the_first_process():
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    workers = [subprocess.Popen([sys.executable, "-c", TWO_PROCESS_STREAM, str(i), port], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-2000:]
    every = sorted((step, member) for step in (0, 5, 10, 15, 20) for member in (0, 1))
    assert f"process 0 streamed {every}" in outputs[0][0]
    assert "process 1 streamed []" in outputs[1][0]
