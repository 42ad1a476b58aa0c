"""Data loaders: scikit-learn's bundled digits (offline) and the CIFAR-10/100 binary archives.

CIFAR is read from the official *binary* versions (never pickle):

- CIFAR-10: ``cifar-10-binary.tar.gz`` → ``cifar-10-batches-bin/`` with ``data_batch_1.bin`` …
  ``data_batch_5.bin`` and ``test_batch.bin``; record = 1 label byte + 3072 pixel bytes.
- CIFAR-100: ``cifar-100-binary.tar.gz`` → ``cifar-100-binary/`` with ``train.bin`` and
  ``test.bin``; record = coarse label byte + fine label byte + 3072 pixel bytes (fine labels
  are returned).

Pixels are stored as 1024 R, 1024 G, 1024 B bytes, each a row-major 32×32 plane; they are
returned as uint8 NHWC (N, 32, 32, 3).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional, Union

import numpy as np

__all__ = ["CIFAR_SPECS", "CifarSpec", "default_data_root", "load_cifar", "load_digits"]

PathLike = Union[str, "os.PathLike[str]"]


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
    """Where and how one CIFAR binary archive is stored."""

    url: str
    archive: str
    md5: str
    directory: str
    train_files: tuple[str, ...]
    test_file: str
    label_bytes: int  # bytes before the pixels in a record
    label_index: int  # which of them is the returned label

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
        label_bytes=1,
        label_index=0,
    ),
    "cifar100": CifarSpec(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        archive="cifar-100-binary.tar.gz",
        md5="03b5dce01913d631647c71ecec9e9cb8",
        directory="cifar-100-binary",
        train_files=("train.bin",),
        test_file="test.bin",
        label_bytes=2,
        label_index=1,
    ),
}


def default_data_root() -> Path:
    """``$ADABIAS_DATA`` if set, else ``~/.cache/adabias``."""
    env = os.environ.get("ADABIAS_DATA")
    return Path(env).expanduser() if env else Path("~/.cache/adabias").expanduser()


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_md5(path: Path, expected: str, *, delete: bool) -> None:
    actual = _md5(path)
    if actual != expected:
        if delete:
            path.unlink(missing_ok=True)
        raise ValueError(
            f"MD5 mismatch for {path}: expected {expected}, got {actual}"
            + (" (the file was deleted)" if delete else "; delete or replace the file")
        )


def _read_records(path: Path, spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    raw = path.read_bytes()
    if len(raw) == 0 or len(raw) % spec.record_size != 0:
        raise ValueError(
            f"{path}: size {len(raw)} bytes is not a positive multiple of the record size "
            f"{spec.record_size} (file truncated or corrupted?)"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, spec.record_size)
    labels = records[:, spec.label_index].astype(np.int64)
    images = records[:, spec.label_bytes :].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _find_extracted(root: Path, spec: CifarSpec) -> Optional[Path]:
    """A directory holding the test file and at least one train file, or None."""
    for cand in (root, root / spec.directory):
        if (cand / spec.test_file).is_file() and any(
            (cand / f).is_file() for f in spec.train_files
        ):
            return cand
    return None


def _safe_extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        for m in members:
            p = PurePosixPath(m.name)
            if p.is_absolute() or ".." in p.parts or m.name.startswith(("/", "\\")):
                raise ValueError(f"{archive}: unsafe member path {m.name!r} in archive")
            if not (m.isfile() or m.isdir()):
                raise ValueError(f"{archive}: member {m.name!r} is not a regular file/dir")
        tar.extractall(dest, members=members)  # noqa: S202 - members checked above


def _download(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url) as response, open(tmp, "wb") as f:  # noqa: S310
            shutil.copyfileobj(response, f)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def load_cifar(
    name: str, root: Optional[PathLike] = None, download: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load CIFAR-10 (``"cifar10"``) or CIFAR-100 (``"cifar100"``, fine labels).

    Returns ``(x_train, y_train, x_test, y_test)``: uint8 images (N, 32, 32, 3) and int64
    labels. ``root`` defaults to ``default_data_root()``. Lookup order:

    1. extracted .bin files in ``root`` itself or in ``root/<directory>`` (e.g.
       ``cifar-10-batches-bin``); the test file and at least one train file are required —
       train files that are absent are skipped with a warning (a subset of the batches);
    2. the archive ``root/<archive>``: MD5 verified, then extracted safely into ``root``;
    3. with ``download=True``: fetched from the official URL into ``root``, MD5 verified (a
       mismatching file is deleted and ``ValueError`` raised), extracted;
    4. otherwise ``FileNotFoundError`` saying where it looked.

    A .bin file whose size is not a multiple of the record size raises ``ValueError``.
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in CIFAR_SPECS:
        raise ValueError(f"name must be 'cifar10' or 'cifar100', got {name!r}")
    spec = CIFAR_SPECS[key]
    root = Path(root).expanduser() if root is not None else default_data_root()

    found = _find_extracted(root, spec)
    if found is None:
        archive = root / spec.archive
        if archive.is_file():
            _check_md5(archive, spec.md5, delete=False)
        elif download:
            _download(spec.url, archive)
            _check_md5(archive, spec.md5, delete=True)
        else:
            raise FileNotFoundError(
                f"{name}: no data found. Looked for {spec.test_file} and "
                f"{', '.join(spec.train_files)} in {root} and {root / spec.directory}, and for "
                f"the archive {archive}. Pass download=True to fetch {spec.url} into {root} "
                f"(or set root= / $ADABIAS_DATA to where the data lives)."
            )
        _safe_extract(archive, root)
        found = _find_extracted(root, spec)
        if found is None:
            raise FileNotFoundError(
                f"{archive} was extracted into {root} but {root / spec.directory} does not "
                f"hold {spec.test_file} and a train file"
            )

    present = [f for f in spec.train_files if (found / f).is_file()]
    missing = [f for f in spec.train_files if f not in present]
    if missing:
        warnings.warn(
            f"{name}: train files missing in {found}: {', '.join(missing)}; "
            f"loading only {', '.join(present)}",
            stacklevel=2,
        )
    parts = [_read_records(found / f, spec) for f in present]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = _read_records(found / spec.test_file, spec)
    return x_train, y_train, x_test, y_test
