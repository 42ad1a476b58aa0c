"""The results record of a finished experiment (``results/<id>.json``) and when it may be reused.

A record is trusted only when everything it was made from and everything it made is unchanged:

- its key: the experiment id, its settings, a SHA-256 of the whole adabias source (every ``.py``
  of the installed package) and the versions of adabias and the libraries that compute the
  numbers (:data:`LIBRARIES`);
- the SHA-256 of each figure and data file it owns;
- the SHA-256 of its own content (field ``sha256``), so an edited record is caught.

:func:`load_cached` returns the record as a cached :class:`Record`, ``None`` when there is none,
or raises :class:`Stale` saying why it cannot be reused (the runner then recomputes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional

from adabias.experiments.base import Experiment, _plain, settings_dict
from adabias.report.files import sha256_bytes, sha256_file

FORMAT = "adabias.results/1"
#: The libraries whose versions are part of the key (they compute the numbers).
LIBRARIES = ("jax", "jaxlib", "optax", "diffrax", "numpy")
#: The installed package whose source is hashed into the key.
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_CLAIM_FIELDS = {"id": str, "statement": str, "held": bool, "numbers": dict, "settings": dict,
                 "note": str, "experiment": str, "paper": str}


class Stale(Exception):
    """A results record exists but cannot be reused; the message says why."""


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
    computed: str = ""  # when the results were computed (ISO 8601, local time)
    why: str = ""  # why a cached record was not reused ("" when none was there)


class CacheKey(NamedTuple):
    """What a result was computed under; a result is reused only under an equal key."""

    experiment: str
    settings: dict
    source: str  # SHA-256 of the adabias package source
    versions: dict  # package name -> version


def _json_ready(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples as lists, keys as strings)."""
    return json.loads(json.dumps(value))


def _canonical_sha256(value: Any) -> str:
    return sha256_bytes(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def source_digest(root: Path) -> str:
    """SHA-256 over the relative path and content of every ``.py`` file under ``root``
    (about 2 ms for the package: computed afresh for each experiment, so an edit made while a
    process runs is seen too)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(f"{path.relative_to(root).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def library_versions(version: str) -> dict:
    versions = {"adabias": version}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def cache_key(experiment: Experiment, settings: Any, version: str) -> CacheKey:
    return CacheKey(experiment.id, _json_ready(_plain(settings_dict(settings))),
                    source_digest(PACKAGE_ROOT), library_versions(version))


def key_difference(saved: Any, key: CacheKey) -> str:
    """Why a record computed under ``saved`` (a JSON mapping) does not hold under ``key``."""
    if not isinstance(saved, Mapping) or set(saved) != set(key._fields):
        return "its key is malformed"
    if saved["experiment"] != key.experiment:
        return f"it was computed for experiment {saved['experiment']!r}"
    if saved["settings"] != key.settings:
        old, new = saved["settings"], key.settings
        names = sorted(n for n in set(old) | set(new) if old.get(n, ...) != new.get(n, ...)) \
            if isinstance(old, Mapping) else ["all"]
        return f"the settings changed ({', '.join(names)})"
    if saved["source"] != key.source:
        return "the adabias source changed since it was computed"
    old = saved["versions"] if isinstance(saved["versions"], Mapping) else {}
    for name, version in key.versions.items():
        if old.get(name) != version:
            return f"{name} changed ({old.get(name)} -> {version})"
    return ""


def owned_files(figures: list, data: list) -> list[str]:
    """The files of a record, relative to the output directory."""
    return ([f"figures/{stem}.{suffix}" for stem in figures for suffix in ("png", "svg")]
            + [f"data/{name}" for name in data])


def record_json(key: CacheKey, record: Record, files: Mapping[str, str]) -> str:
    """The text of ``results/<id>.json``: the record, the checksums of its ``files``
    (relative path -> SHA-256) and of its own content."""
    body = _json_ready({
        "format": FORMAT, "key": key._asdict(), "computed": record.computed,
        "seconds": record.seconds, "claims": record.claims, "notes": record.notes,
        "figures": record.figures, "data": record.data, "settings": record.settings,
        "files": dict(files)})
    return json.dumps(dict(body, sha256=_canonical_sha256(body)), indent=1)


def _check_shape(saved: dict, experiment: Experiment) -> None:
    """Raise :class:`Stale` unless ``saved`` has every field the report reads, well typed."""
    def require(condition: bool, what: str) -> None:
        if not condition:
            raise Stale(f"results record {experiment.id}.json is malformed ({what})")

    for name, kind in [("computed", str), ("seconds", (int, float)), ("claims", list),
                       ("notes", list), ("figures", list), ("data", list), ("settings", dict),
                       ("files", dict)]:
        require(isinstance(saved.get(name), kind), f"field {name!r}")
    for claim in saved["claims"]:
        require(isinstance(claim, dict) and all(isinstance(claim.get(f), kind)
                                                for f, kind in _CLAIM_FIELDS.items()),
                "a claim lacks a field")
    require(sorted(c["id"] for c in saved["claims"]) == sorted(experiment.claims),
            "its claims are not the experiment's")
    require(all(isinstance(x, str) for x in saved["notes"] + saved["figures"] + saved["data"]),
            "notes, figures and data must be strings")
    require(sorted(saved["files"]) == sorted(owned_files(saved["figures"], saved["data"])),
            "its file list")


def load_cached(out: Path, experiment: Experiment, key: CacheKey) -> Optional[Record]:
    """The record of ``experiment`` in ``out`` if it may be reused under ``key``, ``None`` when
    there is none; :class:`Stale` (saying why) when there is one that may not."""
    path = out / "results" / f"{experiment.id}.json"
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_bytes())
    except OSError as error:
        raise Stale(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:  # not UTF-8 or not JSON (e.g. cut short)
        raise Stale(f"results record {path.name} is not valid JSON ({error})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise Stale(f"results record {path.name} has no checksums (older format or malformed)")
    body = {k: v for k, v in saved.items() if k != "sha256"}
    if not isinstance(saved.get("sha256"), str):
        raise Stale(f"results record {path.name} is malformed (no checksum of its content)")
    if saved["sha256"] != _canonical_sha256(body):
        raise Stale(f"results record {path.name} changed since it was written")
    why = key_difference(saved.get("key"), key)
    if why:
        raise Stale(why)
    _check_shape(saved, experiment)
    for relative, expected in saved["files"].items():
        kind = "figure" if relative.startswith("figures/") else "data file"
        name = relative.split("/", 1)[1]
        try:
            actual = sha256_file(out / relative)
        except OSError:
            raise Stale(f"{kind} {name} is missing") from None
        if actual != expected:
            raise Stale(f"{kind} {name} changed since it was written")
    return Record(experiment, "cached", float(saved["seconds"]), saved["claims"], saved["notes"],
                  saved["figures"], saved["data"], saved["settings"], computed=saved["computed"])
