"""Types and checks shared by the optimizers."""

from __future__ import annotations

from typing import Callable, Union

import jax

from adabias._validation import check_positive

ScalarOrSchedule = Union[float, jax.Array, Callable[[jax.Array], jax.Array]]


def check_learning_rate(learning_rate: ScalarOrSchedule) -> None:
    """A fixed step size must be positive; schedules are the caller's business."""
    if not callable(learning_rate):
        check_positive("learning_rate", learning_rate)
