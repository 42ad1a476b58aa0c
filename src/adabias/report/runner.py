"""Run experiments with a per-experiment cache, so an interrupted ``reproduce`` resumes.

Layout of the output directory::

    results/<id>.json   claims, notes, data and figure names of a finished experiment, the
                        key it was computed under and the checksums of its files (cache.py)
    figures/<id>.<name>.png, .svg
    data/<id>.<name>.csv or .json
    logs/<id>.log       warnings and, on failure, the traceback

Every file is written atomically (files.py); an experiment's results record is written last,
so a run stopped at any moment leaves nothing that a later run would trust but should not.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from adabias.experiments.base import Context, Experiment, Result, _plain, check_result, settings_dict
from adabias.report.cache import CacheKey, Record, Stale, cache_key, load_cached, record_json
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
                    force: bool = False, progress: bool = True, version: str = "") -> list[Record]:
    """Run every experiment in order (cached ones are loaded), printing one line each.

    A failing experiment is recorded (status ``"failed"``, the error) and the others still run.
    """
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for index, experiment in enumerate(experiments, 1):
        if progress:
            print(f"[{index}/{len(experiments)}] {experiment.id}: {experiment.title} ...", flush=True)
        record = run_one(experiment, out, scale=scale, force=force, progress=progress, version=version)
        if progress:
            print(f"    {status_line(record)}", flush=True)
        records.append(record)
    return records
