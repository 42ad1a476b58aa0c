"""Files of the output directory: atomic writes, checksums, the output check and its lock.

Every file the report writes goes through :func:`write_atomic`: the bytes go to a temporary file
in the same folder (``.<name>.<random>.partial``), which then replaces the target in one
``os.replace``. A run killed at any moment leaves either the old file or the new one, never a
half-written one; the temporary files it leaves are never read and are removed by the next run
(:func:`remove_partial_files`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

#: The folders of an output directory (DESIGN §4.2).
FOLDERS = ("results", "figures", "data", "logs")
_PARTIAL = ".partial"


class OutputError(Exception):
    """The output directory cannot be used (the message names the path and why)."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: Union[bytes, str]) -> str:
    """Write ``data`` to ``path`` all at once or not at all; return its SHA-256."""
    payload = data.encode() if isinstance(data, str) else bytes(data)
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_PARTIAL)
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # as open() would have made it, not mkstemp's 0600
        with os.fdopen(handle, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:  # also KeyboardInterrupt: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return sha256_bytes(payload)


def remove_partial_files(out: Path) -> None:
    """Remove the temporary files an interrupted run left in ``out`` and its folders."""
    for folder in (out, *(out / name for name in FOLDERS)):
        for leftover in folder.glob(f".*{_PARTIAL}"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _describe(error: OSError) -> str:
    reason = error.strerror or str(error)
    if isinstance(error, (NotADirectoryError, FileExistsError)) and error.filename:
        # mkdir under a regular file: name the file that is in the way
        blocking = next((p for p in Path(error.filename).parents if p.is_file()), None)
        if blocking is not None:
            return f"{blocking} is a file, not a directory"
    return reason


def prepare_output(out: Path) -> None:
    """Create ``out`` and its folders and check that each is a writable directory.

    Raises :class:`OutputError` naming the path (``--out``) and the reason.
    """
    for folder in (out, *(out / name for name in FOLDERS)):
        if folder.exists() and not folder.is_dir():
            what = "a file, not a directory" if folder.is_file() else "not a directory"
            raise OutputError(f"--out {out}: {folder} is {what}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(dir=folder, prefix=".probe.", suffix=_PARTIAL)
            os.close(handle)
            os.unlink(probe)
        except OSError as error:
            where = "" if folder == out else f"{folder}: "
            verb = "cannot create or write to it"
            raise OutputError(f"--out {out}: {where}{verb}: {_describe(error)}") from None


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` for the length of a run: a second run into the same directory stops
    with :class:`OutputError` instead of interleaving its files with this one's."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    with open(out / ".lock", "a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"--out {out} is in use by another adabias reproduce "
                              "(wait for it to finish, or choose another --out)") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
