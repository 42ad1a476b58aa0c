"""Small image classifiers as pure JAX functions with explicit parameter pytrees (no flax)."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

__all__ = [
    "accuracy",
    "classifier_loss",
    "cnn_apply",
    "cross_entropy_loss",
    "init_cnn",
    "init_mlp",
    "make_classifier",
    "mlp_apply",
]

Params = dict[str, Any]


def _normal_chunks(key: Any, shapes: Sequence[tuple[int, ...]], dtype: Any) -> list[Array]:
    """Independent N(0, 1) arrays of the given shapes from ONE draw (one compile, not many)."""
    sizes = [math.prod(s) for s in shapes]
    flat = jax.random.normal(key, (sum(sizes),), dtype=dtype)
    out, start = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(flat[start : start + size].reshape(shape))
        start += size
    return out


def _dense_init(g: Array, dtype: Any) -> dict[str, Array]:
    """He-normal weights (std √(2/n_in)) from a standard normal draw g, zero bias."""
    n_in, n_out = g.shape
    return {"w": g * math.sqrt(2.0 / n_in), "b": jnp.zeros((n_out,), dtype)}


def init_mlp(key: Any, sizes: Sequence[int], dtype: Any = None) -> Params:
    """MLP params {"layers": [{"w": (sizes[i], sizes[i+1]), "b": (sizes[i+1],)}, ...]}.

    ``sizes`` = (input_dim, hidden..., num_classes); He-normal init, zero biases.
    """
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least (input_dim, output_dim), got {sizes!r}")
    return _init_mlp(key, tuple(int(s) for s in sizes), jnp.dtype(dtype or jnp.result_type(float)))


def _init_mlp(key: Any, sizes: tuple[int, ...], dtype: Any) -> Params:
    draws = _normal_chunks(key, list(zip(sizes[:-1], sizes[1:])), dtype)
    return {"layers": [_dense_init(g, dtype) for g in draws]}


#: Activations between dense layers: ReLU (piecewise linear) or tanh (smooth, C^∞: what a
#: modified flow needs, whose vector field contains the Hessian).
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {"relu": jax.nn.relu, "tanh": jnp.tanh}


def _activation(name: str) -> Callable[[Array], Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got "
                         f"activation={name!r}")
    return ACTIVATIONS[name]


def mlp_apply(params: Params, x: ArrayLike, *, activation: str = "relu") -> Array:
    """Logits of the MLP: x is flattened past the batch axis, ``activation`` ("relu" or
    "tanh") between dense layers."""
    act = _activation(activation)
    x = jnp.asarray(x)
    h = x.reshape(x.shape[0], -1)
    layers = params["layers"]
    for i, layer in enumerate(layers):
        h = h @ layer["w"] + layer["b"]
        if i < len(layers) - 1:
            h = act(h)
    return h


def init_cnn(
    key: Any,
    input_shape: Sequence[int],
    num_classes: int,
    channels: Sequence[int] = (16, 32),
    kernel_size: int = 3,
    dtype: Any = None,
) -> Params:
    """CNN params: conv layers {"w": (k, k, c_in, c_out) HWIO, "b"} and a dense head.

    ``input_shape`` = (H, W, C) (NHWC without the batch axis). Architecture (``cnn_apply``):
    [3×3 conv, stride 1, SAME → ReLU] per entry of ``channels``, global average pool, dense.
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (H, W, C), got {input_shape!r}")
    return _init_cnn(
        key,
        tuple(int(s) for s in input_shape),
        int(num_classes),
        tuple(int(c) for c in channels),
        int(kernel_size),
        jnp.dtype(dtype or jnp.result_type(float)),
    )


def _init_cnn(
    key: Any,
    input_shape: tuple[int, ...],
    num_classes: int,
    channels: tuple[int, ...],
    kernel_size: int,
    dtype: Any,
) -> Params:
    c_ins = (input_shape[-1],) + tuple(channels[:-1])
    shapes = [(kernel_size, kernel_size, ci, co) for ci, co in zip(c_ins, channels)]
    c_last = channels[-1] if channels else input_shape[-1]
    *conv_draws, head_draw = _normal_chunks(key, shapes + [(c_last, num_classes)], dtype)
    convs = []
    for w, (_, _, c_in, c_out) in zip(conv_draws, shapes):
        fan_in = kernel_size * kernel_size * c_in
        convs.append({"w": w * math.sqrt(2.0 / fan_in), "b": jnp.zeros((c_out,), dtype)})
    return {"convs": convs, "head": _dense_init(head_draw, dtype)}


def cnn_apply(params: Params, x: ArrayLike) -> Array:
    """Logits of the CNN for images x of shape (N, H, W, C)."""
    h = jnp.asarray(x)
    for conv in params["convs"]:
        h = jax.lax.conv_general_dilated(
            h,
            conv["w"],
            window_strides=(1, 1),
            padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        h = jax.nn.relu(h + conv["b"])
    h = jnp.mean(h, axis=(1, 2))
    return h @ params["head"]["w"] + params["head"]["b"]


def make_classifier(
    model: str, widths: Sequence[int], input_shape: Sequence[int], num_classes: int, dtype: Any,
    *, activation: str = "relu",
) -> tuple[Callable[[Any], Params], Callable[[Params, Array], Array]]:
    """``(init(key) -> params, apply(params, x) -> logits)`` of a named classifier.

    ``"mlp"``: dense layers of ``widths`` with ``activation`` between them (:func:`init_mlp`,
    :func:`mlp_apply`); ``"cnn"``: 3×3 conv layers of ``widths`` channels with ReLU, global
    average pool, dense head (:func:`init_cnn`, :func:`cnn_apply`). ``input_shape`` = one
    image's (H, W, C). The models of CKS §6 (``"cks_cnn"``, ``"resnet50"``, ``"resnet101"``,
    ``"vit"``) come from :func:`adabias.problems.vision.make_vision_model`.
    """
    if model == "mlp":
        _activation(activation)
        sizes = (math.prod(int(s) for s in input_shape), *widths, num_classes)
        apply = mlp_apply if activation == "relu" else (
            lambda params, x: mlp_apply(params, x, activation=activation))
        return (lambda key: init_mlp(key, sizes, dtype)), apply
    if activation != "relu":
        raise ValueError(f"activation={activation!r} is an option of model='mlp' only")
    if model in ("cks_cnn", "resnet50", "resnet101", "vit"):
        from adabias.problems.vision import make_vision_model

        return make_vision_model(model, widths, input_shape, num_classes, dtype)
    if model == "cnn":
        shape, channels = tuple(input_shape), tuple(widths)
        return (lambda key: init_cnn(key, shape, num_classes, channels, dtype=dtype)), cnn_apply
    raise ValueError("model must be 'mlp', 'cnn', 'cks_cnn', 'resnet50', 'resnet101' or 'vit', "
                     f"got model={model!r}")


def cross_entropy_loss(logits: ArrayLike, labels: ArrayLike) -> Array:
    """Mean cross-entropy −mean_i log softmax(logits_i)[labels_i]; labels are int class ids."""
    logp = jax.nn.log_softmax(jnp.asarray(logits), axis=-1)
    labels = jnp.asarray(labels)
    picked = jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return -jnp.mean(picked)


def accuracy(logits: ArrayLike, labels: ArrayLike) -> Array:
    """Fraction of samples whose arg-max logit equals the label."""
    return jnp.mean(jnp.argmax(jnp.asarray(logits), axis=-1) == jnp.asarray(labels))


def classifier_loss(
    apply_fn: Callable[[Params, Array], Array],
) -> Callable[[Params, dict[str, Array]], Array]:
    """``loss_fn(params, batch) = cross_entropy_loss(apply_fn(params, batch["x"]), batch["y"])``."""

    def loss_fn(params: Params, batch: dict[str, Array]) -> Array:
        return cross_entropy_loss(apply_fn(params, batch["x"]), batch["y"])

    return loss_fn
