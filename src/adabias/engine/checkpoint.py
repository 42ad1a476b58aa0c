"""Resumable runs: the carry and records of a chunked run saved in one ``.npz`` file."""

from __future__ import annotations

import hashlib
import os
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from adabias.engine.loop import Program, PyTree


class Checkpoint:
    """Carry and records of a long run saved after each chunk, in one ``.npz`` file.

    The file is keyed by a fingerprint of the program (number of steps, save interval,
    hyperparameter values, shapes and dtypes of the state); a mismatching file raises
    instead of being silently reused. It is written atomically (temporary file, rename).
    """

    def __init__(self, path, *, program: Program, num_steps: int, hyper: Mapping, carry: PyTree) -> None:
        self.path = os.fspath(path)
        leaves, tree = jax.tree.flatten(carry)
        description = repr((
            num_steps, program.save_every, program.has_batches, [name for name, _ in program.metrics],
            {k: np.asarray(v).tolist() for k, v in sorted(hyper.items())},
            str(tree), [(np.shape(x), str(x.dtype)) for x in leaves],
        ))
        self.fingerprint = hashlib.sha256(description.encode()).hexdigest()

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
        temporary = self.path + ".tmp.npz"
        np.savez(temporary, fingerprint=np.asarray(self.fingerprint), done_chunks=done_chunks, **arrays)
        os.replace(temporary, self.path)

    def load(self, carry: PyTree, first):
        """``(done_chunks, carry, records)`` from the file; ``carry`` and ``first`` give the types."""
        with np.load(self.path) as data:
            if str(data["fingerprint"]) != self.fingerprint:
                raise ValueError(
                    f"checkpoint {self.path} belongs to a different run (other steps, "
                    "hyperparameters or shapes); delete it or choose another path"
                )
            leaves, tree = jax.tree.flatten(carry)
            restored = []
            for i, template in enumerate(leaves):
                value = data[f"carry_{i}"]
                if jnp.issubdtype(template.dtype, jax.dtypes.prng_key):
                    restored.append(jax.random.wrap_key_data(value, impl=jax.random.key_impl(template)))
                else:
                    restored.append(jnp.asarray(value, dtype=template.dtype))
            record_leaves, record_tree = jax.tree.flatten(first)
            records = [jnp.asarray(data[f"records_{i}"]) for i in range(len(record_leaves))]
            return int(data["done_chunks"]), jax.tree.unflatten(tree, restored), jax.tree.unflatten(record_tree, records)
