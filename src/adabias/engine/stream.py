"""Records streamed out of a compiled run: the host side of ``on_record``.

A run that streams compiles :func:`emit` into its scan through ``jax.debug.callback``
(:func:`adabias.engine.loop.advance` with ``stream="ordered"`` or ``"unordered"``); a run
that does not has no callback in its program. The compiled program does not hold the
user's function: it passes an integer token, and :func:`emit` looks the function up in a
registry filled by :func:`registered` for the duration of the run. So one compiled
program serves every sink, and runs in several threads each reach their own.

An exception raised by the sink does not stop the compiled run (a callback cannot): it is
kept, later records are not sent, and :func:`registered` raises it when the run is over.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
from typing import Callable, Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np

#: ``on_block(step, loss, metrics, diverged_at)``, numpy values (a leading member axis in sweeps).
BlockSink = Callable[[int, np.ndarray, dict, np.ndarray], None]


class _Entry:
    def __init__(self, sink: BlockSink) -> None:
        self.sink = sink
        self.error: Optional[BaseException] = None
        self.step = -1


_REGISTRY: dict = {}
_TOKENS = itertools.count()
_LOCK = threading.Lock()


def send(token, step, loss, metrics, diverged_at, *, ordered: bool) -> None:
    """Inside a traced run: send one saved step's records to the sink of ``token``.

    ``jax.debug.callback`` copies its arguments one by one (≈ 20 µs each on a CPU), so the
    records travel as one byte buffer and are unpacked on the host by their static layout.
    """
    tree = (jnp.asarray(token, jnp.int32), jnp.asarray(step, jnp.int32), loss, metrics, diverged_at)
    leaves, treedef = jax.tree.flatten(tree)
    chunks = [_bytes(jnp.asarray(x)) for x in leaves]
    ends = itertools.accumulate(chunk.size for chunk in chunks)
    layout = tuple((jnp.dtype(x.dtype), jnp.shape(x), end - chunk.size, end)
                   for x, chunk, end in zip(leaves, chunks, ends))
    buffer = jnp.concatenate(chunks)
    jax.debug.callback(functools.partial(_receive, treedef, layout), buffer, ordered=ordered)


def _bytes(x: jax.Array) -> jax.Array:
    if jnp.iscomplexobj(x):
        x = jnp.stack([x.real, x.imag], axis=-1)
    elif x.dtype == jnp.bool_:
        x = x.astype(jnp.uint8)
    return jnp.ravel(jax.lax.bitcast_convert_type(x, jnp.uint8))


def _receive(treedef, layout, buffer) -> None:
    buffer = np.asarray(buffer)
    leaves = [buffer[start:end].view(dtype if dtype != np.bool_ else np.uint8).astype(dtype, copy=False).reshape(shape)
              for dtype, shape, start, end in layout]
    emit(*jax.tree.unflatten(treedef, leaves))


def emit(token, step, loss, metrics, diverged_at) -> None:
    """Send one saved step's records (numpy values) to the sink registered under ``token``."""
    entry = _REGISTRY.get(int(token))
    if entry is None or entry.error is not None:
        return
    try:
        entry.sink(int(step), np.asarray(loss), {name: np.asarray(v) for name, v in metrics.items()},
                   np.asarray(diverged_at))
    except BaseException as error:  # noqa: BLE001 - kept and raised by registered()
        entry.error, entry.step = error, int(step)


@contextlib.contextmanager
def registered(sink: BlockSink) -> Iterator[np.ndarray]:
    """Register ``sink``; yield its token (an int32 scalar, an argument of the compiled run).

    On exit, waits for every pending callback (``jax.effects_barrier``), unregisters the
    sink and raises what it raised, naming the step.
    """
    with _LOCK:
        token = next(_TOKENS) % (2**31 - 1)
        entry = _REGISTRY[token] = _Entry(sink)
    try:
        yield np.asarray(token, np.int32)
        jax.effects_barrier()
    finally:
        with _LOCK:
            _REGISTRY.pop(token, None)
    if entry.error is not None:
        raise RuntimeError(f"on_record raised {type(entry.error).__name__} at step {entry.step}: "
                           f"{entry.error}; the run finished but later steps were not streamed"
                           ) from entry.error
