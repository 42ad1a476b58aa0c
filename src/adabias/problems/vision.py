"""The image models of CKS §6 as pure JAX functions with explicit parameter pytrees (no flax).

- :func:`init_cks_cnn` / :func:`cks_cnn_apply`: the authors' 6-conv CNN — 3×3 convolutions
  with 32-32-64-64-128-128 channels (ReLU), a 2×2 max-pool after every second one, then a
  dense layer of 512 (ReLU) and the classes.
- :func:`init_resnet` / :func:`resnet_apply`: ResNet-50 (blocks 3-4-6-3) and ResNet-101
  (3-4-23-3) with bottleneck blocks (1×1, 3×3, 1×1, expansion 4), the CIFAR stem (one 3×3
  convolution, no max-pool), global average pooling and a dense head. Without batch norm:
  a full-batch loss is summed over chunks of the train set (:func:`full_batch_loss`), and
  batch statistics would depend on the chunking; instead the last convolution of every
  residual branch starts at zero (Fixup-style), so each block starts as the identity and
  the deep network trains without normalization. ``width`` scales every channel count.
- :func:`init_vit` / :func:`vit_apply`: a SimpleViT (Beyer et al. 2022): patch embedding,
  fixed 2-d sin-cos position embedding, pre-norm transformer blocks (multi-head attention,
  GELU MLP), mean pooling, layer norm and a dense head.

Every ``apply(params, x)`` maps images (N, H, W, C) to logits (N, classes).
:func:`full_batch_loss` evaluates the full-batch loss E = (1/N) Σᵢ ℓᵢ chunk by chunk (with
rematerialization, so the gradient needs one chunk's activations at a time).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax import Array

Params = dict[str, Any]

__all__ = ["RESNET_BLOCKS", "cks_cnn_apply", "full_batch_accuracy", "full_batch_loss",
           "init_cks_cnn", "init_resnet", "init_vit", "make_vision_model", "resnet_apply",
           "vit_apply"]

#: Bottleneck blocks per stage.
RESNET_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}


def _dtype(dtype: Any) -> Any:
    return jnp.dtype(dtype or jnp.result_type(float))


def _conv_init(key: Any, k: int, c_in: int, c_out: int, dtype: Any, scale: float = 1.0) -> dict:
    """He-normal 3×3 (or k×k) HWIO kernel, zero bias."""
    w = jax.random.normal(key, (k, k, c_in, c_out), dtype) * math.sqrt(2.0 / (k * k * c_in))
    return {"w": w * scale, "b": jnp.zeros((c_out,), dtype)}


def _dense_init(key: Any, n_in: int, n_out: int, dtype: Any, gain: float = 2.0) -> dict:
    w = jax.random.normal(key, (n_in, n_out), dtype) * math.sqrt(gain / n_in)
    return {"w": w, "b": jnp.zeros((n_out,), dtype)}


def _conv(x: Array, layer: dict, stride: int = 1) -> Array:
    y = jax.lax.conv_general_dilated(x, layer["w"], (stride, stride), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + layer["b"]


def _max_pool(x: Array) -> Array:
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


# --- the authors' CNN -----------------------------------------------------------------------


def init_cks_cnn(key: Any, input_shape: Sequence[int], num_classes: int,
                 channels: Sequence[int] = (32, 32, 64, 64, 128, 128), dense: int = 512,
                 dtype: Any = None) -> Params:
    """Params of the 6-conv CNN: ``channels`` 3×3 convolutions (a 2×2 max-pool after every
    second), a dense layer of ``dense`` units and the head. ``input_shape`` = (H, W, C), H and
    W divisible by 2^(len(channels)/2)."""
    height, width, c_in = (int(s) for s in input_shape)
    pools = len(channels) // 2
    if len(channels) % 2 or height % 2 ** pools or width % 2 ** pools:
        raise ValueError(f"channels must come in pairs and the image size {height}×{width} be "
                         f"divisible by {2 ** pools}, got channels={tuple(channels)}")
    dtype = _dtype(dtype)
    keys = jax.random.split(key, len(channels) + 2)
    convs, c = [], c_in
    for k, c_out in zip(keys, channels):
        convs.append(_conv_init(k, 3, c, int(c_out), dtype))
        c = int(c_out)
    flat = (height // 2 ** pools) * (width // 2 ** pools) * c
    return {"convs": convs, "dense": _dense_init(keys[-2], flat, int(dense), dtype),
            "head": _dense_init(keys[-1], int(dense), int(num_classes), dtype, gain=1.0)}


def cks_cnn_apply(params: Params, x: Array) -> Array:
    """Logits of the 6-conv CNN (:func:`init_cks_cnn`)."""
    h = jnp.asarray(x)
    for i, conv in enumerate(params["convs"]):
        h = jax.nn.relu(_conv(h, conv))
        if i % 2 == 1:
            h = _max_pool(h)
    h = h.reshape(h.shape[0], -1)
    h = jax.nn.relu(h @ params["dense"]["w"] + params["dense"]["b"])
    return h @ params["head"]["w"] + params["head"]["b"]


# --- ResNet -----------------------------------------------------------------------------------


def init_resnet(key: Any, input_shape: Sequence[int], num_classes: int, depth: str = "resnet50",
                width: int = 64, dtype: Any = None) -> Params:
    """Params of a bottleneck ResNet (``depth`` "resnet50" or "resnet101", or a tuple of
    blocks per stage); stage s has ``width``·2^s inner and 4·``width``·2^s outer channels."""
    blocks = RESNET_BLOCKS[depth] if isinstance(depth, str) else tuple(int(b) for b in depth)
    dtype = _dtype(dtype)
    c_in = int(input_shape[-1])
    key, stem_key, head_key = jax.random.split(key, 3)
    params: Params = {"stem": _conv_init(stem_key, 3, c_in, width, dtype), "stages": []}
    c = width
    for s, count in enumerate(blocks):
        inner, outer = width * 2 ** s, 4 * width * 2 ** s
        stage = []
        for b in range(count):
            key, k1, k2, k3, k4 = jax.random.split(key, 5)
            block = {"conv1": _conv_init(k1, 1, c, inner, dtype),
                     "conv2": _conv_init(k2, 3, inner, inner, dtype),
                     "conv3": _conv_init(k3, 1, inner, outer, dtype, scale=0.0)}
            if b == 0:
                block["project"] = _conv_init(k4, 1, c, outer, dtype)
            stage.append(block)
            c = outer
        params["stages"].append(stage)
    params["head"] = _dense_init(head_key, c, int(num_classes), dtype, gain=1.0)
    return params


def resnet_apply(params: Params, x: Array) -> Array:
    """Logits of the ResNet (:func:`init_resnet`): stride 2 at the first block of stages 2–4."""
    h = jax.nn.relu(_conv(jnp.asarray(x), params["stem"]))
    for s, stage in enumerate(params["stages"]):
        for b, block in enumerate(stage):
            stride = 2 if (s > 0 and b == 0) else 1
            branch = jax.nn.relu(_conv(h, block["conv1"]))
            branch = jax.nn.relu(_conv(branch, block["conv2"], stride))
            branch = _conv(branch, block["conv3"])
            shortcut = _conv(h, block["project"], stride) if "project" in block else h
            h = jax.nn.relu(shortcut + branch)
    h = jnp.mean(h, axis=(1, 2))
    return h @ params["head"]["w"] + params["head"]["b"]


# --- SimpleViT --------------------------------------------------------------------------------


def _layer_norm_init(dim: int, dtype: Any) -> dict:
    return {"scale": jnp.ones((dim,), dtype), "shift": jnp.zeros((dim,), dtype)}


def _layer_norm(x: Array, p: dict) -> Array:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + 1e-6) * p["scale"] + p["shift"]


def _sincos_2d(rows: int, cols: int, dim: int, dtype: Any) -> Array:
    """Fixed 2-d sin-cos position embedding (rows·cols, dim), dim divisible by 4."""
    y, x = jnp.meshgrid(jnp.arange(rows), jnp.arange(cols), indexing="ij")
    omega = 1.0 / 10000 ** (jnp.arange(dim // 4) / (dim // 4 - 1 or 1))
    y = y.reshape(-1)[:, None] * omega[None]
    x = x.reshape(-1)[:, None] * omega[None]
    return jnp.concatenate([jnp.sin(x), jnp.cos(x), jnp.sin(y), jnp.cos(y)], axis=1).astype(dtype)


def init_vit(key: Any, input_shape: Sequence[int], num_classes: int, patch: int = 4,
             dim: int = 256, depth: int = 6, heads: int = 8, mlp_dim: int = 512,
             dtype: Any = None) -> Params:
    """Params of a SimpleViT: ``patch``×``patch`` patches embedded in ``dim`` (divisible by 4
    and by ``heads``), ``depth`` pre-norm blocks of ``heads``-head attention and a GELU MLP."""
    height, width, channels = (int(s) for s in input_shape)
    if height % patch or width % patch or dim % 4 or dim % heads:
        raise ValueError(f"patch={patch} must divide {height}×{width}, dim={dim} be divisible "
                         f"by 4 and by heads={heads}")
    dtype = _dtype(dtype)
    keys = jax.random.split(key, 2 + 4 * depth)
    blocks = []
    for i in range(depth):
        k = keys[2 + 4 * i: 6 + 4 * i]
        blocks.append({"norm1": _layer_norm_init(dim, dtype),
                       "qkv": _dense_init(k[0], dim, 3 * dim, dtype, gain=1.0),
                       "out": _dense_init(k[1], dim, dim, dtype, gain=1.0),
                       "norm2": _layer_norm_init(dim, dtype),
                       "mlp1": _dense_init(k[2], dim, mlp_dim, dtype),
                       "mlp2": _dense_init(k[3], mlp_dim, dim, dtype, gain=1.0)})
    return {"embed": _dense_init(keys[0], patch * patch * channels, dim, dtype, gain=1.0),
            "blocks": blocks, "norm": _layer_norm_init(dim, dtype),
            "head": _dense_init(keys[1], dim, int(num_classes), dtype, gain=1.0)}


def vit_apply(params: Params, x: Array, *, heads: int = 8) -> Array:
    """Logits of the SimpleViT (:func:`init_vit`); ``heads`` as at init (the fixed position
    embedding is computed here, it is not a parameter)."""
    x = jnp.asarray(x)
    n, height, width, channels = x.shape
    dim = params["embed"]["w"].shape[1]
    patch = int(round(math.sqrt(params["embed"]["w"].shape[0] // channels)))
    rows, cols = height // patch, width // patch
    tokens = x.reshape(n, rows, patch, cols, patch, channels).transpose(0, 1, 3, 2, 4, 5)
    tokens = tokens.reshape(n, rows * cols, patch * patch * channels)
    h = tokens @ params["embed"]["w"] + params["embed"]["b"]
    h = h + _sincos_2d(rows, cols, dim, h.dtype)
    for block in params["blocks"]:
        y = _layer_norm(h, block["norm1"])
        qkv = (y @ block["qkv"]["w"] + block["qkv"]["b"]).reshape(n, -1, 3, heads, dim // heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        attention = jax.nn.softmax(jnp.einsum("nqhd,nkhd->nhqk", q, k) / math.sqrt(dim // heads),
                                   axis=-1)
        y = jnp.einsum("nhqk,nkhd->nqhd", attention, v).reshape(n, -1, dim)
        h = h + y @ block["out"]["w"] + block["out"]["b"]
        y = _layer_norm(h, block["norm2"])
        y = jax.nn.gelu(y @ block["mlp1"]["w"] + block["mlp1"]["b"])
        h = h + y @ block["mlp2"]["w"] + block["mlp2"]["b"]
    h = _layer_norm(h.mean(axis=1), params["norm"])
    return h @ params["head"]["w"] + params["head"]["b"]


# --- by name and full-batch evaluation ---------------------------------------------------------


def make_vision_model(model: str, widths: Sequence[int], input_shape: Sequence[int],
                      num_classes: int, dtype: Any
                      ) -> tuple[Callable[[Any], Params], Callable[[Params, Array], Array]]:
    """``(init(key), apply(params, x))`` of ``"cks_cnn"`` (``widths`` = 6 channel counts then
    the dense width), ``"resnet50"``/``"resnet101"`` (``widths`` = (base width,)) or ``"vit"``
    (``widths`` = (patch, dim, depth, heads, mlp_dim))."""
    shape, widths = tuple(int(s) for s in input_shape), tuple(int(w) for w in widths)
    if model == "cks_cnn":
        if len(widths) < 3:
            raise ValueError(f"cks_cnn widths = (conv channels..., dense), got {widths}")
        return (lambda key: init_cks_cnn(key, shape, num_classes, widths[:-1], widths[-1],
                                         dtype)), cks_cnn_apply
    if model in RESNET_BLOCKS:
        (width,) = widths or (64,)
        return (lambda key: init_resnet(key, shape, num_classes, model, width, dtype)), \
            resnet_apply
    if model == "vit":
        patch, dim, depth, heads, mlp_dim = widths
        return ((lambda key: init_vit(key, shape, num_classes, patch, dim, depth, heads, mlp_dim,
                                      dtype)),
                lambda params, x: vit_apply(params, x, heads=heads))
    raise ValueError(f"model must be 'cks_cnn', 'resnet50', 'resnet101' or 'vit', got {model!r}")


def _chunks(x: Array, y: Array, chunk: int) -> tuple[Array, Array]:
    n = x.shape[0]
    if chunk < 1 or n % chunk:
        raise ValueError(f"chunk={chunk} must be positive and divide the {n} samples")
    return x.reshape(n // chunk, chunk, *x.shape[1:]), y.reshape(n // chunk, chunk)


def full_batch_loss(apply: Callable[[Params, Array], Array], params: Params, x: Array, y: Array,
                    chunk: int) -> Array:
    """E = (1/N) Σᵢ ℓᵢ, ℓᵢ the cross-entropy of sample i: per-sample losses summed over chunks
    of ``chunk`` samples (each chunk rematerialized in the backward pass), divided by N."""
    xs, ys = _chunks(x, y, chunk)

    @jax.checkpoint
    def chunk_sum(params, xc, yc):
        logp = jax.nn.log_softmax(apply(params, xc), axis=-1)
        return -jnp.sum(jnp.take_along_axis(logp, yc[:, None].astype(jnp.int32), axis=-1))

    def body(total, batch):
        return total + chunk_sum(params, *batch), None

    zero = jnp.zeros((), jax.tree.leaves(params)[0].dtype)
    total, _ = jax.lax.scan(body, zero, (xs, ys))
    return total / x.shape[0]


def full_batch_accuracy(apply: Callable[[Params, Array], Array], params: Params, x: Array,
                        y: Array, chunk: int) -> Array:
    """Fraction of correctly classified samples, evaluated chunk by chunk."""
    xs, ys = _chunks(x, y, chunk)
    correct = jax.lax.map(lambda b: jnp.sum(jnp.argmax(apply(params, b[0]), -1) == b[1]),
                          (xs, ys))
    return jnp.sum(correct) / x.shape[0]
