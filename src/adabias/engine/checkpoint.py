"""Resumable runs: the carry and records of a chunked run saved in one ``.npz`` file.

A file is keyed by a :class:`Fingerprint`: one SHA-256 per thing that determines the result
(the compiled program with its constants, the initial parameters, the keys, the batches, the
grid values, the steps and chunks). A file written by a different run is refused with
:class:`CheckpointMismatch`, which names what differs; a file that cannot be read, or a path
that cannot be written, raises :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from typing import Any, BinaryIO, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from adabias.engine.loop import PyTree


class CheckpointError(ValueError):
    """A checkpoint file that cannot be written or read."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint file written by a different run (``differs`` names the components)."""

    def __init__(self, message: str, differs: tuple = ()) -> None:
        super().__init__(message)
        self.differs = tuple(differs)


class Fingerprint(NamedTuple):
    """SHA-256 digests of everything that determines a chunked run's result."""

    program: str  # lowered start and step programs: optimizer with its constants, loss_fn,
    #               noise, metrics, save_every, shapes and dtypes
    params0: str  # the initial parameters (every member's, in a sweep)
    key: str  # the PRNG keys (noise, and the seeds of a sweep)
    batches: str
    grid: str  # the hyperparameter values of every member (empty for ``run``)
    steps: str  # num_steps, save_every and the chunks


_WHAT = {
    "program": "the program (optimizer and its constants, loss_fn, noise, metrics, dtypes or shapes)",
    "params0": "the initial parameters",
    "key": "the PRNG key",
    "batches": "the batches",
    "grid": "the grid values",
    "steps": "the number of steps, save_every or chunks",
}


def digest_arrays(tree: PyTree) -> str:
    """SHA-256 of a pytree's leaves: their paths, dtypes, shapes and bytes (keys by their data)."""
    sha = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            sha.update(str(jax.random.key_impl(leaf)).encode())
            leaf = jax.random.key_data(leaf)
        array = np.ascontiguousarray(np.asarray(leaf))
        sha.update(f"{jax.tree_util.keystr(path)}|{array.dtype}|{array.shape}|".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def digest_text(*texts: str) -> str:
    sha = hashlib.sha256()
    for text in texts:
        sha.update(text.encode())
        sha.update(b"\0")
    return sha.hexdigest()


def fingerprint(*, programs: Sequence[str], params0: PyTree, keys: jax.Array, batches: PyTree,
                hyper: PyTree, num_steps: int, save_every: int, chunks: Sequence[int]) -> Fingerprint:
    """The :class:`Fingerprint` of a run; ``programs`` are the lowered texts of its programs."""
    return Fingerprint(
        program=digest_text(*programs),
        params0=digest_arrays(params0),
        key=digest_arrays(keys),
        batches=digest_arrays(batches),
        grid=digest_arrays(dict(hyper)),
        steps=digest_text(repr((int(num_steps), int(save_every), [int(c) for c in chunks]))),
    )


def writable_path(path) -> str:
    """``path`` as a string, after checking that a checkpoint can be written there.

    Called before any work, so a typo in the folder fails at once, not after the first chunk.
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise CheckpointError(f"checkpoint must be a file path (str or os.PathLike), got {path!r}") from None
    if not path:
        raise CheckpointError("checkpoint must be a file path, got an empty string")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a folder; give a file path, e.g. {os.path.join(path, 'run.npz')}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CheckpointError(f"checkpoint {path}: the folder {folder} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise CheckpointError(f"checkpoint {path}: cannot write in the folder {folder} ({error})") from None
    return path


def write_atomic(path: str, write: Callable[[BinaryIO], Any]) -> None:
    """``write(file)`` into a temporary file in the folder of ``path``, then ``os.replace``.

    An interruption at any point (even ``kill -9``) leaves the previous file or the new one,
    never a partial one; the temporary file is removed on errors.
    """
    folder, name = os.path.split(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # as open() would make it, not mkstemp's 0600
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


@functools.lru_cache(maxsize=None)
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Checkpoint:
    """Carry and records of a long run saved after each chunk, in one ``.npz`` file.

    The file is written atomically: a temporary file in the same folder, then ``os.replace``,
    so an interruption at any point (even ``kill -9``) leaves the previous complete file.
    """

    def __init__(self, path: str, fingerprint: Fingerprint) -> None:
        self.path = path
        self.fingerprint = fingerprint

    def exists(self) -> bool:
        return os.path.exists(self.path)

    @staticmethod
    def _to_numpy(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return np.asarray(jax.random.key_data(x))
        return np.asarray(x)

    def save(self, done_chunks: int, carry: PyTree, records) -> None:
        """Write the state after ``done_chunks`` chunks (carry and the records so far)."""
        arrays = {f"carry_{i}": self._to_numpy(x) for i, x in enumerate(jax.tree.leaves(carry))}
        arrays.update({f"records_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(records))})
        arrays.update({f"fingerprint_{name}": np.asarray(value) for name, value in self.fingerprint._asdict().items()})
        write_atomic(self.path, lambda file: np.savez(file, done_chunks=done_chunks, **arrays))

    def load(self, carry: PyTree, first, num_chunks: int):
        """``(done_chunks, carry, records)`` from the file; ``carry`` and ``first`` give the types."""
        try:
            with _open_npz(self.path) as data:
                stored = {name: data[f"fingerprint_{name}"] for name in Fingerprint._fields
                          if f"fingerprint_{name}" in data.files}
                self._check_fingerprint(stored)
                done_chunks = int(data["done_chunks"])
                carry_values = [data[f"carry_{i}"] for i in range(len(jax.tree.leaves(carry)))]
                record_values = [data[f"records_{i}"] for i in range(len(jax.tree.leaves(first)))]
        except CheckpointError:
            raise
        except Exception as error:  # any failure to read the file: zip, npy, I/O, missing entries
            raise CheckpointError(
                f"checkpoint {self.path} cannot be read ({type(error).__name__}: {error}); the "
                "file is damaged or not an adabias checkpoint: delete it or choose another path"
            ) from error
        if not 0 <= done_chunks <= num_chunks:
            raise CheckpointError(f"checkpoint {self.path} records {done_chunks} done chunks of {num_chunks}")
        leaves, tree = jax.tree.flatten(carry)
        restored = []
        for template, value in zip(leaves, carry_values):
            if jnp.issubdtype(template.dtype, jax.dtypes.prng_key):
                value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(template))
            else:
                value = jnp.asarray(value, dtype=template.dtype)
            if value.shape != template.shape:
                raise CheckpointError(f"checkpoint {self.path} holds a state of shape {value.shape}, "
                                      f"the run has {template.shape}")
            restored.append(jax.device_put(value, template.sharding))
        records = jax.tree.unflatten(jax.tree.structure(first), [jnp.asarray(x) for x in record_values])
        return done_chunks, jax.tree.unflatten(tree, restored), records

    def _check_fingerprint(self, stored: dict) -> None:
        if len(stored) != len(Fingerprint._fields):
            raise CheckpointMismatch(
                f"checkpoint {self.path} belongs to a different run (it has no fingerprint of this "
                "version of adabias); delete it or choose another path", Fingerprint._fields)
        differs = tuple(name for name in Fingerprint._fields
                        if str(stored[name]) != getattr(self.fingerprint, name))
        if differs:
            raise CheckpointMismatch(
                f"checkpoint {self.path} belongs to a different run; it differs in "
                + ", ".join(_WHAT[name] for name in differs)
                + ". Delete it or choose another path", differs)


def _open_npz(path: str):
    data = np.load(path, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError("a single array (.npy), not an .npz archive")
    return data
