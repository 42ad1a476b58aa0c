"""Data loaders: scikit-learn's bundled digits (offline) and the CIFAR-10/100 binary archives.

CIFAR is read from the official *binary* versions (never pickle):

- CIFAR-10: ``cifar-10-binary.tar.gz`` → ``cifar-10-batches-bin/`` with ``data_batch_1.bin`` …
  ``data_batch_5.bin`` (10000 records each) and ``test_batch.bin`` (10000); record = 1 label
  byte (0…9) + 3072 pixel bytes.
- CIFAR-100: ``cifar-100-binary.tar.gz`` → ``cifar-100-binary/`` with ``train.bin`` (50000)
  and ``test.bin`` (10000); record = coarse label byte (0…19) + fine label byte (0…99) + 3072
  pixel bytes (fine labels are returned).

Pixels are stored as 1024 R, 1024 G, 1024 B bytes, each a row-major 32×32 plane; they are
returned as uint8 NHWC (N, 32, 32, 3). Files are checked before use (MD5 of the archive, a
``SHA256SUMS`` manifest, record counts, label ranges): see :func:`load_cifar`.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NoReturn, Optional, Union

import numpy as np

__all__ = ["CIFAR_SPECS", "MANIFEST_NAME", "CifarSpec", "DataIntegrityError",
           "DataUnavailableError", "default_data_root", "load_cifar", "load_digits"]

PathLike = Union[str, "os.PathLike[str]"]
MANIFEST_NAME = "SHA256SUMS"


class DataIntegrityError(ValueError):
    """A data file is not what it should be (checksum, size, record count, label, symlink)."""


class DataUnavailableError(FileNotFoundError):
    """The data is neither on disk nor could it be downloaded."""


def load_digits(
    test_fraction: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits (1797 images, 10 classes), bundled, so offline.

    Returns ``(x_train, y_train, x_test, y_test)``: float64 images in [0, 1] of shape
    (N, 8, 8, 1) (pixel values 0…16 divided by 16) and int64 labels; a stratified split with
    ``test_fraction`` of the samples in the test set, shuffled with ``seed``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    digits = _sk_load_digits()
    x = (digits.images.astype(np.float64) / 16.0)[..., None]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return x_tr, y_tr, x_te, y_te


@dataclass(frozen=True)
class CifarSpec:
    """Where and how one CIFAR binary archive is stored, and its official layout."""

    url: str
    archive: str
    md5: str
    directory: str
    train_files: tuple[str, ...]
    test_file: str
    labels: tuple[tuple[str, int], ...]  # (name, classes) per label byte; the last is returned
    train_records: int  # records in each official train file
    test_records: int

    @property
    def label_bytes(self) -> int:
        return len(self.labels)

    @property
    def record_size(self) -> int:
        return self.label_bytes + 3072


CIFAR_SPECS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        archive="cifar-10-binary.tar.gz",
        md5="c32a1d4ab5d03f1284b67883e8d87530",
        directory="cifar-10-batches-bin",
        train_files=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        test_file="test_batch.bin",
        labels=(("label", 10),),
        train_records=10000,
        test_records=10000,
    ),
    "cifar100": CifarSpec(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        archive="cifar-100-binary.tar.gz",
        md5="03b5dce01913d631647c71ecec9e9cb8",
        directory="cifar-100-binary",
        train_files=("train.bin",),
        test_file="test.bin",
        labels=(("coarse label", 20), ("fine label", 100)),
        train_records=50000,
        test_records=10000,
    ),
}


def default_data_root() -> Path:
    """``$ADABIAS_DATA`` if set, else ``~/.cache/adabias``."""
    env = os.environ.get("ADABIAS_DATA")
    return Path(env).expanduser() if env else Path("~/.cache/adabias").expanduser()


# ---------------------------------------------------------------- files and checksums
def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _refuse_symlink(path: Path) -> None:
    if path.is_symlink():
        raise DataIntegrityError(
            f"{path} is a symbolic link (to {os.readlink(path)}); data files and folders are "
            "read only as real files (a link may point at another batch): replace it by a copy"
        )


def _check_md5(path: Path, expected: str, *, delete: bool) -> None:
    actual = _digest(path, "md5")
    if actual != expected:
        if delete:
            path.unlink(missing_ok=True)
        raise DataIntegrityError(
            f"MD5 mismatch for {path}: expected {expected}, got {actual}"
            + (" (the file was deleted)" if delete else "; delete or replace the file")
        )


_MANIFEST_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


def _read_manifest(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` from a ``sha256sum`` file; malformed lines are refused."""
    _refuse_symlink(path)
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.fullmatch(line)
        name = match and PurePosixPath(match.group(2))
        if not match or name.is_absolute() or ".." in name.parts or "\\" in match.group(2):
            raise DataIntegrityError(
                f"{path}, line {number}: {line!r} is not a sha256sum line "
                "'<64 hex digits>  <relative path>'"
            )
        if str(name) in entries:
            raise DataIntegrityError(f"{path}, line {number}: {str(name)!r} is listed twice")
        entries[str(name)] = match.group(1).lower()
    if not entries:
        raise DataIntegrityError(f"{path}: the manifest lists no files")
    return entries


def _write_manifest(folder: Path, names: list[str]) -> None:
    """Write ``folder/SHA256SUMS`` for ``names`` atomically (temporary file, then replace)."""
    lines = "".join(f"{_digest(folder / n, 'sha256')}  {n}\n" for n in sorted(names))
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST_NAME}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(lines)
        os.replace(tmp, folder / MANIFEST_NAME)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _folder_manifest(folder: Path) -> Optional[tuple[Path, dict[str, str]]]:
    """The manifest that covers ``folder``, its entries relative to ``folder``; or None.

    ``folder/SHA256SUMS``, else ``folder/../SHA256SUMS`` when it lists files of ``folder``
    (entries ``<folder name>/<file>``, as ``sha256sum -c`` run one level up reads them).
    """
    own, parent, prefix = folder / MANIFEST_NAME, folder.parent / MANIFEST_NAME, f"{folder.name}/"
    if os.path.lexists(own):
        return own, _read_manifest(own)
    if os.path.lexists(parent):
        listed = _read_manifest(parent).items()
        entries = {n[len(prefix) :]: d for n, d in listed if n.startswith(prefix)}
        if entries:
            return parent, entries
    return None


def _verify_manifest(
    manifest: Path, entries: dict[str, str], folder: Path, needed: list[str]
) -> None:
    unlisted = [n for n in needed if n not in entries]
    if unlisted:
        raise DataIntegrityError(
            f"{manifest} does not list {', '.join(unlisted)} (in {folder}): add the file's "
            "line (sha256sum FILE) or remove the file"
        )
    for name, expected in entries.items():
        path = folder / name
        _refuse_symlink(path)
        if not path.is_file():
            raise DataIntegrityError(f"{path} is listed in {manifest} but is missing")
        actual = _digest(path, "sha256")
        if actual != expected:
            raise DataIntegrityError(
                f"SHA-256 mismatch for {path}: {manifest} says {expected}, the file has "
                f"{actual} (the file changed since the manifest was written)"
            )


# ---------------------------------------------------------------- archive
def _safe_extract(archive: Path, dest: Path) -> list[str]:
    """Extract ``archive`` into ``dest``; return the regular files it held (posix paths)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                p = PurePosixPath(m.name)
                if p.is_absolute() or ".." in p.parts or m.name.startswith(("/", "\\")):
                    raise DataIntegrityError(f"{archive}: unsafe member path {m.name!r}")
                if not (m.isfile() or m.isdir()):
                    raise DataIntegrityError(f"{archive}: member {m.name!r} is not a file/dir")
                for depth in range(1, len(p.parts) + 1):  # never write through a link
                    _refuse_symlink(dest.joinpath(*p.parts[:depth]))
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # 3.10.12+
            tar.extractall(dest, members=members, **safe)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataIntegrityError(f"{archive}: cannot be extracted ({error})") from error
    return [str(PurePosixPath(m.name)) for m in members if m.isfile()]


def _download(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:  # noqa: S310
            shutil.copyfileobj(response, f)
        tmp.replace(dest)
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise DataUnavailableError(
            f"could not download {url} ({error}). Fetch it on a machine with internet access "
            f"and place it by hand as the file {dest.name} in the folder {dest.parent}"
        ) from error
    finally:
        tmp.unlink(missing_ok=True)


def _extract_archive(archive: Path, root: Path, spec: CifarSpec) -> Path:
    """Extract the MD5-verified ``archive`` and write the manifest of its data folder."""
    folder = root / spec.directory
    names = _safe_extract(archive, root)
    prefix = f"{spec.directory}/"
    files = [n[len(prefix) :] for n in names if n.startswith(prefix)]
    if spec.test_file not in files:
        raise DataIntegrityError(
            f"{archive} does not hold {prefix}{spec.test_file}: not the official archive"
        )
    _write_manifest(folder, files)
    return folder


# ---------------------------------------------------------------- records
def _find_extracted(root: Path, spec: CifarSpec) -> Optional[Path]:
    """The folder holding the test file (``root`` or ``root/<directory>``), or None."""
    for cand in (root, root / spec.directory):
        if cand != root:
            _refuse_symlink(cand)
        if os.path.lexists(cand / spec.test_file):
            return cand
    return None


def _record_count(path: Path, spec: CifarSpec) -> int:
    _refuse_symlink(path)
    size = path.stat().st_size
    if size == 0 or size % spec.record_size != 0:
        raise DataIntegrityError(
            f"{path}: size {size} bytes is not a positive whole number of "
            f"{spec.record_size}-byte records (file truncated or corrupted?)"
        )
    return size // spec.record_size


def _refuse_unofficial(folder: Path, root: Path, spec: CifarSpec, problem: str) -> NoReturn:
    raise DataIntegrityError(
        f"{folder}: {problem}, which is not the official layout, and no {MANIFEST_NAME} "
        f"manifest vouches for the files. To fix: place the official archive {spec.archive} "
        f"(MD5 {spec.md5}) in {root} and remove {folder} (the loader verifies and extracts it "
        f"and writes the manifest), or, for a deliberate subset, add a manifest: run "
        f"`sha256sum *.bin > {MANIFEST_NAME}` in {folder}"
    )


def _read_records(path: Path, spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    _record_count(path, spec)
    raw = path.read_bytes()
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, spec.record_size)
    for index, (what, classes) in enumerate(spec.labels):
        bad = np.flatnonzero(records[:, index] >= classes)
        if bad.size:
            raise DataIntegrityError(
                f"{path}: record {bad[0]} has {what} {records[bad[0], index]}, outside "
                f"0…{classes - 1} ({bad.size} such records; file corrupted or not this data set?)"
            )
    labels = records[:, spec.label_bytes - 1].astype(np.int64)
    images = records[:, spec.label_bytes :].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _checked_files(folder: Path, root: Path, name: str, spec: CifarSpec) -> list[str]:
    """The train files to load, after the manifest or official-layout checks."""
    present = [f for f in spec.train_files if os.path.lexists(folder / f)]
    missing = [f for f in spec.train_files if f not in present]
    for f in [*present, spec.test_file]:
        _refuse_symlink(folder / f)
    covered = _folder_manifest(folder)
    if covered is not None:
        _verify_manifest(*covered, folder, [*present, spec.test_file])
    elif missing:
        _refuse_unofficial(folder, root, spec, f"{', '.join(missing)} missing")
    for f in [*present, spec.test_file]:
        count = _record_count(folder / f, spec)
        official = spec.test_records if f == spec.test_file else spec.train_records
        if covered is None and count != official:
            _refuse_unofficial(folder, root, spec, f"{f} holds {count} records, not {official}")
    if not present:
        raise DataIntegrityError(f"{folder}: no train file ({', '.join(spec.train_files)})")
    if missing:
        warnings.warn(
            f"{name}: train files missing in {folder}: {', '.join(missing)}; "
            f"loading only {', '.join(present)} (as listed in the manifest)",
            stacklevel=3,
        )
    return present


def load_cifar(
    name: str, root: Optional[PathLike] = None, *, download: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load CIFAR-10 (``"cifar10"``) or CIFAR-100 (``"cifar100"``, fine labels).

    Returns ``(x_train, y_train, x_test, y_test)``: uint8 images (N, 32, 32, 3) and int64
    labels. ``root`` defaults to ``default_data_root()``. Lookup order:

    1. extracted .bin files in ``root`` or ``root/<directory>`` (``cifar-10-batches-bin``);
    2. the archive ``root/<archive>``: MD5 verified, extracted safely into ``root``, and a
       ``SHA256SUMS`` manifest of the extracted files written (atomically) into the folder;
    3. with ``download=True``: fetched from the official URL, MD5 verified (a mismatching
       file is deleted), then as 2; a failed download raises :class:`DataUnavailableError`
       naming the URL and the folder and file name under which to place it by hand;
    4. otherwise :class:`DataUnavailableError` saying where it looked.

    Before parsing, a folder with a ``SHA256SUMS`` manifest (``sha256sum`` format, in the
    folder or one level up as ``<directory>/<file>``) must match it and list every file loaded;
    a verified manifest is what allows a subset (fewer records or train files than the official
    layout; missing train files are skipped with a warning). A folder without a manifest must
    have the official layout and record counts. Always: whole records, labels in range
    (CIFAR-10 0…9; CIFAR-100 coarse 0…19, fine 0…99), no symbolic link below ``root``.
    Failures raise :class:`DataIntegrityError` (a ``ValueError``) naming the file.
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in CIFAR_SPECS:
        raise ValueError(f"name must be 'cifar10' or 'cifar100', got {name!r}")
    spec = CIFAR_SPECS[key]
    root = Path(root).expanduser() if root is not None else default_data_root()

    folder = _find_extracted(root, spec)
    if folder is None:
        archive = root / spec.archive
        if archive.is_file():
            _check_md5(archive, spec.md5, delete=False)
        elif download:
            _download(spec.url, archive)
            _check_md5(archive, spec.md5, delete=True)
        else:
            raise DataUnavailableError(
                f"{name}: no data found. Looked for {spec.test_file} and "
                f"{', '.join(spec.train_files)} in {root} and {root / spec.directory}, and for "
                f"the archive {archive}. Pass download=True to fetch {spec.url} into {root}, "
                f"or place the file {spec.archive} in {root} by hand "
                f"(or set root= / $ADABIAS_DATA to where the data lives)."
            )
        folder = _extract_archive(archive, root, spec)

    train_files = _checked_files(folder, root, name, spec)
    parts = [_read_records(folder / f, spec) for f in train_files]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = _read_records(folder / spec.test_file, spec)
    return x_train, y_train, x_test, y_test
