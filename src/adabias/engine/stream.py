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
import itertools
import threading
from typing import Callable, Iterator, Optional

import jax
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


def emit(token, step, loss, metrics, diverged_at) -> None:
    """Send one saved step's records to the sink registered under ``token`` (the callback target)."""
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
