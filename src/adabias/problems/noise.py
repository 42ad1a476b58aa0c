"""Label noise for regression batches (LWL): y ← y + δξ, ξ uniform on {−1, +1}."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = ["label_noise"]

Batch = dict[str, Any]


def label_noise(delta: float, key_name: str = "y") -> Callable[[Any, Batch], Batch]:
    """Return ``noise(key, batch) -> batch`` adding δ·ξ to ``batch[key_name]``.

    ξ has the shape of the labels, entries independent and uniform on {−1, +1}. Other entries of
    the batch are passed through unchanged. For the loss ½·mean_i (f_i − y_i)² with every label
    perturbed, the gradient-noise covariance near the manifold is (δ²/n)·H.
    """
    if not delta >= 0:
        raise ValueError(f"delta must be >= 0, got {delta!r}")

    def noise(key: Any, batch: Batch) -> Batch:
        y = batch[key_name]
        xi = jax.random.rademacher(key, jnp.shape(y), dtype=jnp.result_type(y, float))
        out = dict(batch)
        out[key_name] = y + delta * xi
        return out

    return noise
