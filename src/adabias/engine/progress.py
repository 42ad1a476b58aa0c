"""Progress bars (tqdm) that nest: each new bar takes the line below the bars already open.

Used by the engine's chunk bar and by the experiments' ``Context.track``, so a run's bar
inside an experiment's loop sits under the loop's bar instead of writing over it. Bars do
not stay on the screen once done (``leave=False``), and are closed on errors too.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator


def _open_bars(tqdm_class) -> int:
    return len(getattr(tqdm_class, "_instances", ()))


def bar(*, total: int, desc: str, unit: str = "it"):
    """A tqdm bar on the first line below the open bars (a context manager)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, position=_open_bars(tqdm))


def track(items: Iterable, *, desc: str) -> Iterator:
    """``items`` one by one behind a :func:`bar` (closed when the loop ends, breaks or raises)."""
    items = list(items)
    with bar(total=len(items), desc=desc) as progress:
        for item in items:
            yield item
            progress.update(1)


@contextlib.contextmanager
def optional_bar(show: bool, *, total: int, desc: str, unit: str = "it"):
    """:func:`bar` when ``show``, else ``None``."""
    if not show:
        yield None
        return
    with bar(total=total, desc=desc, unit=unit) as progress:
        yield progress
