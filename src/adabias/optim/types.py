"""Types shared by the optimizers (their checks live in :mod:`adabias._validation`)."""

from __future__ import annotations

from typing import Callable, Union

import jax

ScalarOrSchedule = Union[float, jax.Array, Callable[[jax.Array], jax.Array]]
