"""Run experiments with a per-experiment cache, so an interrupted ``reproduce`` resumes.

Layout of the output directory::

    results/<id>.json   claims, notes, data and figure names of a finished experiment, the
                        key it was computed under and the checksums of its files (cache.py)
    figures/<id>.<name>.png, .svg
    data/<id>.<name>.csv or .json
    logs/<id>.log       warnings and, on failure, the traceback

Every file is written atomically (files.py); an experiment's results record is written last,
so a run stopped at any moment leaves nothing that a later run would trust but should not.

With ``jobs > 1`` the experiments of the package run in that many worker processes (spawned,
each with its own JAX), longest first by their last recorded time; experiments that share an
in-process memo (``Experiment.shares``) run in one worker, in order. A worker writes the same
files as a sequential run and the parent reads each finished result back through the cache's
checks, so the report cannot differ in kind from a sequential one. Workers die with the parent
(``PR_SET_PDEATHSIG`` on Linux). Experiments defined outside ``adabias.experiments`` (e.g. made
in a test) run in the parent.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime
import io
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from adabias.experiments.base import Context, Experiment, Result, _plain, check_result, settings_dict
from adabias.report.cache import (CacheKey, Record, Stale, cache_key, load_cached, record_json)
from adabias.report.files import FOLDERS, write_atomic

log = logging.getLogger("adabias")

__all__ = ["CacheKey", "Record", "cache_key", "run_experiments", "run_one"]


def _data_text(table: Any) -> tuple[str, str]:
    """(suffix, text): CSV for a mapping of equal-length 1-d columns, JSON otherwise."""
    if isinstance(table, dict) and table:
        columns = {k: np.asarray(v) for k, v in table.items()}
        lengths = {c.shape for c in columns.values()}
        if len(lengths) == 1 and next(iter(lengths)) and len(next(iter(lengths))) == 1:
            names = list(columns)
            rows = zip(*(columns[n].tolist() for n in names))
            lines = [",".join(names)] + [",".join(_csv_cell(x) for x in row) for row in rows]
            return ".csv", "\n".join(lines) + "\n"
    return ".json", json.dumps(_plain(table), indent=1)


def _csv_cell(x: Any) -> str:
    if isinstance(x, float):
        return repr(x)
    text = str(x)
    return f'"{text}"' if ("," in text or '"' in text) else text


def _figure_bytes(figure: Any, suffix: str) -> bytes:
    buffer = io.BytesIO()
    dpi = {"dpi": 130} if suffix == "png" else {}
    figure.savefig(buffer, format=suffix, bbox_inches="tight", **dpi)
    return buffer.getvalue()


def _save(out: Path, experiment: Experiment, result: Result) -> tuple[list, list, dict]:
    """Write the figures and data files; return their stems, names and checksums."""
    import matplotlib.pyplot as plt

    stems, names, files = [], [], {}
    for name, figure in result.figures.items():
        stem = f"{experiment.id}.{name}"
        for suffix in ("png", "svg"):
            relative = f"figures/{stem}.{suffix}"
            files[relative] = write_atomic(out / relative, _figure_bytes(figure, suffix))
        plt.close(figure)
        stems.append(stem)
    for name, table in result.data.items():
        suffix, text = _data_text(table)
        relative = f"data/{experiment.id}.{name}{suffix}"
        files[relative] = write_atomic(out / relative, text)
        names.append(relative.split("/", 1)[1])
    return stems, names, files


def _failure(error: BaseException) -> str:
    """``Type: message``, and where it was raised when the message is empty."""
    if str(error):
        return f"{type(error).__name__}: {error}"
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (raised at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}{where}"


def _warning_lines(caught) -> str:
    return "".join(f"warning: {w.category.__name__}: {w.message}\n" for w in caught)


def _compute(experiment: Experiment, out: Path, key: CacheKey, *, scale: str, progress: bool,
             why: str) -> Record:
    """Run ``experiment`` and write its files, its log and (last) its results record."""
    settings = experiment.settings_at(scale)
    plain_settings = _plain(settings_dict(settings))
    for folder in FOLDERS:
        (out / folder).mkdir(parents=True, exist_ok=True)
    log_path = out / "logs" / f"{experiment.id}.log"
    header = f"recomputed: {why}\n" if why else ""
    start = time.perf_counter()
    captured = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(captured):
                result = experiment.run(settings, Context(scale=scale, progress=progress))
            check_result(experiment, result)
            figures, data, files = _save(out, experiment, result)
            seconds = time.perf_counter() - start
            claims = [dict(c.to_json(), experiment=experiment.id, paper=experiment.paper)
                      for c in result.claims]
            record = Record(experiment, "ran", seconds, claims, list(result.notes), figures, data,
                            plain_settings, why=why,
                            computed=datetime.datetime.now().isoformat(timespec="seconds"))
            write_atomic(log_path, header + captured.getvalue() + _warning_lines(caught)
                         + f"finished in {seconds:.1f} s\n")
            write_atomic(out / "results" / f"{experiment.id}.json", record_json(key, record, files))
        except Exception as error:  # report, keep going with the other experiments
            seconds = time.perf_counter() - start
            with contextlib.suppress(OSError):
                write_atomic(log_path, header + captured.getvalue() + "\n" + _warning_lines(caught)
                             + traceback.format_exc())
            return Record(experiment, "failed", seconds, [], [], [], [], plain_settings,
                          error=_failure(error), why=why)
    return record


def run_one(experiment: Experiment, out: Path, *, scale: str, force: bool, progress: bool,
            version: str) -> Record:
    """Run (or load from the cache, when every checksum and the key agree) one experiment and
    write its files under ``out``. With ``progress``, say why a cached result is not reused."""
    key = cache_key(experiment, experiment.settings_at(scale), version)
    why = ""
    if not force:
        try:
            cached = load_cached(out, experiment, key)
        except Stale as stale:
            why = str(stale)
            if progress:
                print(f"    recomputing {experiment.id}: {why}", flush=True)
        else:
            if cached is not None:
                return cached
    return _compute(experiment, out, key, scale=scale, progress=progress, why=why)


def status_line(record: Record) -> str:
    """``ran, 4/4 claims held (2.4 s)``, ``cached (computed 2026-11-30 12:01, 2.5 s), …`` or
    ``failed: Error: message (0.3 s)``."""
    if record.status == "failed":
        return f"failed: {record.error} ({record.seconds:.1f} s)"
    held = f"{sum(c['held'] for c in record.claims)}/{len(record.claims)} claims held"
    if record.status == "cached":
        computed = record.computed.replace("T", " ")[:16]
        return f"cached (computed {computed}, {record.seconds:.1f} s), {held}"
    return f"{record.status}, {held} ({record.seconds:.1f} s)"


def run_experiments(experiments: Sequence[Experiment], out: Path, *, scale: str = "quick",
                    force: bool = False, progress: bool = True, version: str = "",
                    jobs: int = 1) -> list[Record]:
    """Run every experiment (cached ones are loaded), printing one line each; the records in
    the order of ``experiments``.

    ``jobs``: worker processes for the package's experiments (module docstring); 1 runs
    everything here, in order. A failing experiment is recorded (status ``"failed"``, the
    error) and the others still run.
    """
    if int(jobs) < 1:
        raise ValueError(f"jobs must be a positive number, got jobs={jobs!r}")
    out.mkdir(parents=True, exist_ok=True)
    if int(jobs) > 1:
        return _run_in_workers(list(experiments), out, scale=scale, force=force,
                               progress=progress, version=version, jobs=int(jobs))
    records = []
    for index, experiment in enumerate(experiments, 1):
        if progress:
            print(f"[{index}/{len(experiments)}] {experiment.id}: {experiment.title} ...", flush=True)
        record = run_one(experiment, out, scale=scale, force=force, progress=progress, version=version)
        if progress:
            print(f"    {status_line(record)}", flush=True)
        records.append(record)
    return records


# --- worker processes -----------------------------------------------------------------------

def _in_package(experiment: Experiment) -> bool:
    """Whether a fresh process finds ``experiment`` in the registry (its module is one of the
    package's experiment modules, and it is the registered object of its id)."""
    from adabias.experiments.base import REGISTRY

    module = getattr(experiment.measure, "__module__", "") or ""
    return module.startswith("adabias.experiments.") and REGISTRY.get(experiment.id) is experiment


def _groups(experiments: Sequence[Experiment], out: Path) -> list[list[Experiment]]:
    """Experiments sharing a memo (``shares``) together, in order; groups longest first by the
    times recorded in ``out/results`` (read for scheduling only; unknown times first)."""
    groups: dict[str, list[Experiment]] = {}
    for experiment in experiments:
        groups.setdefault(experiment.shares or experiment.id, []).append(experiment)

    def last_seconds(experiment: Experiment) -> float:
        try:
            return float(json.loads((out / "results" / f"{experiment.id}.json").read_bytes())
                         ["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return float("inf")

    return sorted(groups.values(), key=lambda group: -sum(map(last_seconds, group)))


def _die_with_parent(parent: int) -> None:
    """Worker initializer: SIGKILL when the parent dies (Linux), and exit at once if it died
    before this ran; x64, as the CLI sets it."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)
    import jax

    jax.config.update("jax_enable_x64", True)


def _work(ids: Sequence[str], out: str, scale: str, force: bool, version: str) -> list[tuple]:
    """Run the experiments ``ids`` in this worker: (status, seconds, error, why) each."""
    from adabias.experiments import REGISTRY

    outcomes = []
    for id_ in ids:
        record = run_one(REGISTRY[id_], Path(out), scale=scale, force=force, progress=False,
                         version=version)
        outcomes.append((record.status, record.seconds, record.error, record.why))
    return outcomes


def _record_from_worker(experiment: Experiment, out: Path, outcome: tuple, *, scale: str,
                        version: str) -> Record:
    """The record a worker finished, read back through the cache's checks."""
    status, seconds, error, why = outcome
    settings = _plain(settings_dict(experiment.settings_at(scale)))
    if status == "failed":
        return Record(experiment, "failed", seconds, [], [], [], [], settings, error=error,
                      why=why)
    try:
        record = load_cached(out, experiment, cache_key(experiment, experiment.settings_at(scale),
                                                        version))
    except Stale as stale:
        record = None
        error = f"the worker's results do not verify: {stale}"
    if record is None:
        return Record(experiment, "failed", seconds, [], [], [], [], settings,
                      error=error or "the worker wrote no results record", why=why)
    return dataclasses.replace(record, status=status, why=why)


def _run_in_workers(experiments: list[Experiment], out: Path, *, scale: str, force: bool,
                    progress: bool, version: str, jobs: int) -> list[Record]:
    local = [e for e in experiments if not _in_package(e)]
    groups = _groups([e for e in experiments if _in_package(e)], out)
    done: dict[str, Record] = {}
    total, finished = len(experiments), 0

    def report(record: Record) -> None:
        nonlocal finished
        finished += 1
        done[record.experiment.id] = record
        if progress:
            print(f"[{finished}/{total}] {record.experiment.id}: {status_line(record)}",
                  flush=True)

    if progress and groups:
        print(f"running {sum(map(len, groups))} experiments in {min(jobs, len(groups))} "
              "worker processes", flush=True)
    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, max(1, len(groups))),
                                                  mp_context=context,
                                                  initializer=_die_with_parent,
                                                  initargs=(os.getpid(),))
    try:
        futures = {pool.submit(_work, [e.id for e in group], str(out), scale, force, version):
                   group for group in groups}
        for experiment in local:
            report(run_one(experiment, out, scale=scale, force=force, progress=False,
                           version=version))
        for future in concurrent.futures.as_completed(futures):
            group = futures[future]
            try:
                outcomes = future.result()
            except Exception as error:  # the worker died, or failed outside an experiment
                outcomes = [("failed", 0.0, f"its worker process failed: {_failure(error)}", "")
                            ] * len(group)
            for experiment, outcome in zip(group, outcomes):
                report(_record_from_worker(experiment, out, outcome, scale=scale,
                                           version=version))
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [done[e.id] for e in experiments]
