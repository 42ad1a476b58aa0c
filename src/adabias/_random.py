"""Random draws shared by several layers."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def rademacher(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """Independent signs ±1 of ``shape``, 32 per random 32-bit word.

    Each row along the last axis takes ⌈shape[-1]/32⌉ words of ``jax.random.bits``; bit j of a
    word gives the sign 2·bit − 1. On CPU this is a third of the cost of
    ``jax.random.rademacher`` (one word per sign) for Hutchinson probes; for label noise
    under ``vmap`` see :func:`adabias.problems.label_noise`.
    """
    shape = tuple(int(s) for s in shape)
    size = shape[-1] if shape else 1
    words = jax.random.bits(key, shape[:-1] + (-(-size // 32),), jnp.uint32)
    bits = (words[..., None] >> jnp.arange(32, dtype=jnp.uint32)) & 1
    signs = bits.reshape(shape[:-1] + (-1,))[..., :size]
    return (2 * signs.astype(dtype) - 1).reshape(shape)
