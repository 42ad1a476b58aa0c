"""Run experiments with a per-experiment cache, so an interrupted ``reproduce`` resumes.

Layout of the output directory::

    results/<id>.json   claims, notes, data and figure names of a finished experiment,
                        with the cache key (experiment id, settings, adabias version)
    figures/<id>.<name>.png, .svg
    data/<id>.<name>.csv or .json
    logs/<id>.log       warnings and, on failure, the traceback
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import io
import json
import logging
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from adabias.experiments.base import (Context, Experiment, Result, _plain, check_result,
                                      settings_dict)

log = logging.getLogger("adabias")


@dataclasses.dataclass
class Record:
    """The outcome of one experiment: finished (fresh or cached) or failed."""

    experiment: Experiment
    status: str  # "ran", "cached" or "failed"
    seconds: float
    claims: list  # of dicts (Claim.to_json plus experiment, paper)
    notes: list
    figures: list  # file stems under figures/
    data: list  # file names under data/
    settings: dict
    error: str = ""


def cache_key(experiment: Experiment, settings: Any, version: str) -> str:
    """Hash of the id, the settings, the adabias version and the experiment module's source."""
    function = getattr(experiment, "measure", None) or experiment.run
    module = sys.modules.get(function.__module__)
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        source = ""
    payload = json.dumps({"id": experiment.id, "settings": _plain(settings_dict(settings)), "version": version,
                          "source": hashlib.sha256(source.encode()).hexdigest()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _write_data(path_stem: Path, table: Any) -> str:
    """CSV for a mapping of equal-length 1-d columns, JSON otherwise; returns the file name."""
    if isinstance(table, dict) and table:
        columns = {k: np.asarray(v) for k, v in table.items()}
        lengths = {c.shape for c in columns.values()}
        if len(lengths) == 1 and next(iter(lengths)) and len(next(iter(lengths))) == 1:
            path = path_stem.parent / (path_stem.name + ".csv")
            names = list(columns)
            rows = zip(*(columns[n].tolist() for n in names))
            with path.open("w") as f:
                f.write(",".join(names) + "\n")
                for row in rows:
                    f.write(",".join(_csv_cell(x) for x in row) + "\n")
            return path.name
    path = path_stem.parent / (path_stem.name + ".json")
    path.write_text(json.dumps(_plain(table), indent=1))
    return path.name


def _csv_cell(x: Any) -> str:
    if isinstance(x, float):
        return repr(x)
    text = str(x)
    return f'"{text}"' if ("," in text or '"' in text) else text


def _save(out: Path, experiment: Experiment, result: Result) -> tuple[list, list]:
    import matplotlib.pyplot as plt

    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(parents=True, exist_ok=True)
    figure_stems = []
    for name, figure in result.figures.items():
        stem = f"{experiment.id}.{name}"
        figure.savefig(out / "figures" / f"{stem}.png", dpi=130, bbox_inches="tight")
        figure.savefig(out / "figures" / f"{stem}.svg", bbox_inches="tight")
        plt.close(figure)
        figure_stems.append(stem)
    data_files = [_write_data(out / "data" / f"{experiment.id}.{name}", table)
                  for name, table in result.data.items()]
    return figure_stems, data_files


def _load_cached(out: Path, experiment: Experiment, key: str) -> Optional[Record]:
    path = out / "results" / f"{experiment.id}.json"
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if saved.get("key") != key:
        return None
    files_present = all((out / "figures" / f"{s}.png").exists() for s in saved["figures"]) and all(
        (out / "data" / d).exists() for d in saved["data"])
    if not files_present:
        return None
    return Record(experiment, "cached", saved["seconds"], saved["claims"], saved["notes"],
                  saved["figures"], saved["data"], saved["settings"])


def run_one(experiment: Experiment, out: Path, *, scale: str, force: bool, progress: bool,
            version: str) -> Record:
    """Run (or load from the cache) one experiment and write its files under ``out``."""
    settings = experiment.settings_at(scale)
    key = cache_key(experiment, settings, version)
    if not force:
        cached = _load_cached(out, experiment, key)
        if cached is not None:
            return cached
    (out / "logs").mkdir(parents=True, exist_ok=True)
    log_path = out / "logs" / f"{experiment.id}.log"
    start = time.perf_counter()
    captured = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(captured):
                result = experiment.run(settings, Context(scale=scale, progress=progress))
            check_result(experiment, result)
            figures, data = _save(out, experiment, result)
        except Exception as error:  # report, keep going with the other experiments
            seconds = time.perf_counter() - start
            text = traceback.format_exc()
            log_path.write_text(captured.getvalue() + "\n" + _warning_lines(caught) + text)
            message = f"{type(error).__name__}: {error}"
            return Record(experiment, "failed", seconds, [], [], [], [], _plain(settings_dict(settings)),
                          error=message)
    seconds = time.perf_counter() - start
    log_path.write_text(captured.getvalue() + _warning_lines(caught)
                        + f"finished in {seconds:.1f} s\n")
    claims = [dict(c.to_json(), experiment=experiment.id, paper=experiment.paper)
              for c in result.claims]
    record = Record(experiment, "ran", seconds, claims, list(result.notes), figures, data,
                    _plain(settings_dict(settings)))
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "results" / f"{experiment.id}.json").write_text(json.dumps({
        "key": key, "seconds": seconds, "claims": claims, "notes": record.notes,
        "figures": figures, "data": data, "settings": record.settings}, indent=1))
    return record


def _warning_lines(caught) -> str:
    return "".join(f"warning: {w.category.__name__}: {w.message}\n" for w in caught)


def run_experiments(experiments: Sequence[Experiment], out: Path, *, scale: str = "quick",
                    force: bool = False, progress: bool = True, version: str = "") -> list[Record]:
    """Run every experiment in order (cached ones are loaded), printing one line each."""
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for index, experiment in enumerate(experiments, 1):
        if progress:
            print(f"[{index}/{len(experiments)}] {experiment.id}: {experiment.title} ...", flush=True)
        record = run_one(experiment, out, scale=scale, force=force, progress=progress, version=version)
        if progress:
            held = sum(c["held"] for c in record.claims)
            status = (f"failed: {record.error}" if record.status == "failed"
                      else f"{record.status}, {held}/{len(record.claims)} claims held")
            print(f"    {status} ({record.seconds:.1f} s)", flush=True)
        records.append(record)
    return records
