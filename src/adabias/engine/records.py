"""A run's records out of the engine: tables (CSV, pandas) and streamed rows.

A table has one row per saved step (per member and saved step in a sweep) and one column
per scalar: ``step``; in a sweep ``member``, each grid value as the user gave it and
``seed``; ``loss``; ``diverged`` (whether the member had diverged before that step: its
record repeats the last finite one); each metric (an array metric gives one column per
entry, ``name[i,j]``); and, when asked, each parameter entry (``params['w'][0]``).

The rows streamed by ``on_record`` are those rows as they are computed: ``on_record(step,
row)`` with ``row`` the other columns (arrays not yet split into entries).
:class:`CSVStream` writes them as :meth:`Trajectory.to_csv` would; :class:`TensorBoardStream`
writes them as scalars.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from typing import Any, Callable, Iterator, Mapping, Optional

import jax
import numpy as np

from adabias.engine.checkpoint import write_atomic
from adabias.engine.stream import BlockSink

#: ``on_record(step, row)``: called at every saved step (per member in a sweep).
OnRecord = Callable[[int, dict], None]

_VALUES = ("loss", "diverged")  # the columns of every record besides step, labels and metrics


# --- columns -----------------------------------------------------------------------------------


def entries(name: str, values: np.ndarray, lead: int) -> Iterator[tuple[str, np.ndarray]]:
    """``(column, values)`` for each entry of an array whose first ``lead`` axes are rows."""
    values = np.asarray(values)
    shape = values.shape[lead:]
    if not shape:
        yield name, values
        return
    for index in np.ndindex(*shape):
        yield f"{name}[{','.join(map(str, index))}]", values[(Ellipsis,) + index]


def check_names(metrics, labels=()) -> None:
    """Every column name once: labels (a sweep's member, grid names, seed) and metrics must not
    take the names of the others or of step, loss and diverged."""
    seen = ["step", *_VALUES]
    for kind, names in (("grid name or label", labels), ("metric", metrics)):
        for name in names:
            if name in seen:
                raise ValueError(f"{kind} {name!r} has the name of another records column "
                                 f"({', '.join(seen)}); rename it")
            seen.append(name)


def given_grid(grid: Mapping[str, Any]) -> dict:
    """The grid as the user gave it: name -> list of Python numbers (a scalar as one value).

    NumPy and JAX scalars become Python numbers (``.item()``); lists of Python floats are
    kept as they are, not rounded to the program's dtype.
    """
    given = {}
    for name, values in grid.items():
        values = np.atleast_1d(np.asarray(values, dtype=object)).tolist()
        given[name] = [value.item() if hasattr(value, "item") else value for value in values]
    return given


def sweep_labels(grid: Mapping[str, list], num_seeds: int) -> dict:
    """A sweep's per-member columns: ``member``, each grid value as given, ``seed``.

    Members are ordered as ``itertools.product(*grid.values(), range(num_seeds))``.
    """
    points = list(itertools.product(*grid.values()))
    labels = {"member": np.arange(len(points) * num_seeds)}
    for j, name in enumerate(grid):
        labels[name] = np.repeat(np.asarray([point[j] for point in points]), num_seeds)
    labels["seed"] = np.tile(np.arange(num_seeds), len(points))
    return labels


def columns(trajectory, *, labels: Mapping[str, np.ndarray], params: bool) -> dict:
    """The records of ``trajectory`` as flat columns (1-d arrays of equal length).

    ``labels`` are per-member columns (a leading member axis, as in a sweep's trajectory),
    repeated over the saved steps.
    """
    steps = np.asarray(trajectory.steps)
    lead = steps.ndim  # 1: (steps,), 2: (members, steps)
    check_names(trajectory.metrics, labels)
    diverged_at = np.expand_dims(np.asarray(trajectory.diverged_at), -1)
    table = {"step": steps}
    table.update({name: np.broadcast_to(np.expand_dims(np.asarray(v), -1), steps.shape)
                  for name, v in labels.items()})
    table["loss"] = np.asarray(trajectory.loss)
    table["diverged"] = (diverged_at >= 0) & (diverged_at < steps)
    for name, values in trajectory.metrics.items():
        table.update(entries(name, values, lead))
    if params:
        if trajectory.params is None:
            raise ValueError("params=True, but the parameters were not recorded (save_params=False)")
        for path, leaf in jax.tree_util.tree_flatten_with_path(trajectory.params)[0]:
            table.update(entries("params" + jax.tree_util.keystr(path), leaf, lead))
    return {name: np.reshape(values, -1) for name, values in table.items()}


# --- files and data frames -------------------------------------------------------------------


def write_csv(path, table: Mapping[str, np.ndarray]) -> None:
    """Write the columns to ``path`` as CSV, atomically (a temporary file, then ``os.replace``)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(list(table))
    writer.writerows(zip(*(_as_text(values) for values in table.values())))
    write_atomic(path, lambda file: file.write(text.getvalue().encode()))


def _as_text(values: np.ndarray) -> np.ndarray:
    """Each value as the shortest text that reads back to it at its own precision."""
    return np.asarray(values).astype(str)


def dataframe(table: Mapping[str, np.ndarray]):
    """The columns as a pandas DataFrame (pandas is the optional extra ``adabias[pandas]``)."""
    try:
        import pandas
    except ImportError as error:
        raise ImportError("to_dataframe needs pandas, which is not installed: "
                          "pip install 'adabias[pandas]' (or pip install pandas)") from error
    return pandas.DataFrame(dict(table))


# --- streamed rows ------------------------------------------------------------------------------


def run_sink(on_record: OnRecord, metric_names) -> BlockSink:
    """The engine's block sink for :func:`~adabias.engine.run`: one row per saved step."""
    _check_callable(on_record)
    check_names(metric_names)

    def sink(step, loss, metrics, diverged_at):
        on_record(step, {"loss": loss[()], "diverged": bool(diverged_at >= 0),
                         **{name: _scalar(v) for name, v in metrics.items()}})

    return sink


def sweep_sink(on_record: OnRecord, metric_names, labels: Mapping[str, np.ndarray]) -> BlockSink:
    """The block sink of a sweep: one row per member and saved step, its labels first."""
    _check_callable(on_record)
    check_names(metric_names, labels)

    def sink(step, loss, metrics, diverged_at):
        for member in range(loss.shape[0]):
            row = {name: values[member] for name, values in labels.items()}
            row.update(loss=loss[member], diverged=bool(diverged_at[member] >= 0))
            row.update({name: _scalar(v[member]) for name, v in metrics.items()})
            on_record(step, row)

    return sink


def _check_callable(on_record) -> None:
    if not callable(on_record):
        raise ValueError(f"on_record must be a function on_record(step, row), got {on_record!r}")


def _scalar(value: np.ndarray) -> Any:
    value = np.asarray(value)
    return value[()] if value.ndim == 0 else value


# --- sinks ----------------------------------------------------------------------------------------


class CSVStream:
    """An ``on_record`` sink that appends each row to a CSV file and flushes it.

    The header is written when the file is new or empty; appending to a file whose header
    differs raises ``ValueError``. The columns are those of ``to_csv``. Use it as a context
    manager, or call :meth:`close`.
    """

    def __init__(self, path) -> None:
        self.path = os.fspath(path)
        self._file = open(self.path, "a+", newline="")
        self._file.seek(0)
        self._header: Optional[list] = next(csv.reader(self._file), None)
        self._file.seek(0, os.SEEK_END)
        self._writer = csv.writer(self._file)

    def __call__(self, step: int, row: Mapping[str, Any]) -> None:
        flat = {"step": np.asarray(step)}
        for name, value in row.items():
            flat.update(entries(name, value, 0))
        if self._header is None:
            self._header = list(flat)
            self._writer.writerow(self._header)
        elif list(flat) != self._header:
            raise ValueError(f"{self.path} has the columns {self._header}, the rows streamed to it "
                             f"have {list(flat)}; write to another file")
        self._writer.writerow([_as_text(value)[()] for value in flat.values()])
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "CSVStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TensorBoardStream:
    """An ``on_record`` sink that writes each scalar of a row to TensorBoard at its step.

    Uses ``tensorboardX`` if installed, else ``torch.utils.tensorboard``. The rows of a
    sweep go to one TensorBoard run per member (``logdir/member<i>``), so the members are
    the curves of each chart; a member's grid values and seed are written as constant
    scalars beside its metrics. Array metrics are written entry by entry (``name/i``, or
    ``name/i_j``: TensorBoard groups the entries of one metric).
    """

    def __init__(self, logdir) -> None:
        self.logdir = os.fspath(logdir)
        self._make_writer = _summary_writer_class()
        self._writers: dict = {}

    def _writer(self, member: Optional[int]):
        if member not in self._writers:
            folder = self.logdir if member is None else os.path.join(self.logdir, f"member{member}")
            self._writers[member] = self._make_writer(folder)
        return self._writers[member]

    def __call__(self, step: int, row: Mapping[str, Any]) -> None:
        member = row.get("member")
        writer = self._writer(None if member is None else int(member))
        for name, value in row.items():
            if name == "member":
                continue
            for column, entry in entries(name, np.asarray(value, dtype=float), 0):
                tag = column.replace("[", "/").replace("]", "").replace(",", "_")  # twice[0] -> twice/0
                writer.add_scalar(tag, float(entry), int(step))
        writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def __enter__(self) -> "TensorBoardStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _summary_writer_class():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError("TensorBoardStream needs tensorboardX (pip install tensorboardX) or "
                              "PyTorch's torch.utils.tensorboard; neither is installed") from error
    return SummaryWriter
