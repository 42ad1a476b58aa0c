"""The image models of CKS §6 (problems.vision): shapes, gradients, chunked full-batch loss,
and the full tier of Figures 4–6 at toy size (slow)."""

import dataclasses

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from adabias.problems import vision  # noqa: E402
from adabias.problems.classifiers import accuracy, cross_entropy_loss, make_classifier  # noqa: E402

TINY_MODELS = {  # (model, widths) at toy size
    "cks_cnn": ("cks_cnn", (2, 2, 3, 3, 4, 4, 5)),
    "resnet50": ("resnet50", (2,)),
    "vit": ("vit", (4, 8, 2, 2, 16)),
}


def _images(n=3, size=8, channels=3, seed=1):
    return jax.random.normal(jax.random.key(seed), (n, size, size, channels), jnp.float64)


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_output_shapes(name):
    model, widths = TINY_MODELS[name]
    init, apply = make_classifier(model, widths, (8, 8, 3), 7, jnp.float64)
    params = init(jax.random.key(0))
    logits = apply(params, _images())
    assert logits.shape == (3, 7) and logits.dtype == jnp.float64
    assert np.all(np.isfinite(logits))


def test_resnet_depths_and_cnn_architecture():
    params = vision.init_resnet(jax.random.key(0), (8, 8, 3), 10, "resnet101", width=1)
    assert [len(stage) for stage in params["stages"]] == [3, 4, 23, 3]
    assert params["head"]["w"].shape == (4 * 8, 10)  # 4·width·2³ outer channels
    # residual branches start at zero: every block is the identity at init (after ReLU)
    assert all(float(jnp.abs(b["conv3"]["w"]).max()) == 0.0 for s in params["stages"] for b in s)
    cnn = vision.init_cks_cnn(jax.random.key(0), (32, 32, 3), 10)
    assert [c["w"].shape[-1] for c in cnn["convs"]] == [32, 32, 64, 64, 128, 128]
    assert cnn["dense"]["w"].shape == (4 * 4 * 128, 512)  # three 2×2 max-pools: 32 → 4
    with pytest.raises(ValueError, match="divisible"):
        vision.init_cks_cnn(jax.random.key(0), (30, 30, 3), 10)
    with pytest.raises(ValueError, match="model"):
        vision.make_vision_model("vgg", (4,), (8, 8, 3), 10, jnp.float64)


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_gradient_matches_finite_differences(name):
    model, widths = TINY_MODELS[name]
    init, apply = make_classifier(model, widths, (8, 8, 3), 5, jnp.float64)
    params = init(jax.random.key(2))
    if name == "resnet50":  # give the zero-initialized branches a gradient path to check
        params = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.key(7), p.shape,
                                                                     p.dtype), params)
    x, y = _images(4, seed=3), jnp.asarray([0, 1, 2, 4])
    flat, unravel = ravel_pytree(params)
    loss = lambda v: cross_entropy_loss(apply(unravel(v), x), y)  # noqa: E731
    direction = jax.random.normal(jax.random.key(4), flat.shape, jnp.float64)
    direction = direction / jnp.linalg.norm(direction)
    step = 1e-5
    numeric = (loss(flat + step * direction) - loss(flat - step * direction)) / (2 * step)
    analytic = jnp.dot(jax.grad(loss)(flat), direction)
    assert float(analytic) == pytest.approx(float(numeric), rel=1e-6, abs=1e-9)


def test_chunked_full_batch_loss_and_accuracy_equal_one_pass():
    init, apply = make_classifier(*TINY_MODELS["cks_cnn"], (8, 8, 3), 4, jnp.float64)
    params = init(jax.random.key(5))
    x, y = _images(12, seed=6), jnp.asarray(np.arange(12) % 4)
    one_pass = cross_entropy_loss(apply(params, x), y)
    assert float(vision.full_batch_loss(apply, params, x, y, 4)) == pytest.approx(
        float(one_pass), rel=1e-13)
    g_chunked = jax.grad(lambda p: vision.full_batch_loss(apply, p, x, y, 3))(params)
    g_one = jax.grad(lambda p: cross_entropy_loss(apply(p, x), y))(params)
    np.testing.assert_allclose(ravel_pytree(g_chunked)[0], ravel_pytree(g_one)[0], rtol=1e-11,
                               atol=1e-14)
    assert float(vision.full_batch_accuracy(apply, params, x, y, 6)) == pytest.approx(
        float(accuracy(apply(params, x), y)))
    with pytest.raises(ValueError, match="divide"):
        vision.full_batch_loss(apply, params, x, y, 5)


@pytest.mark.slow
def test_full_tier_of_figures_4_5_6_at_toy_size(tmp_path):
    """The full tier's code path (6-conv CNN, chunked full batch, checkpointed sweeps) on CPU:
    a few CIFAR-10 images (the shared subset, or synthetic records written in its format)."""
    from adabias.experiments import Tiers, cks_fig4, cks_fig5, cks_fig6
    from adabias.report import run_experiments
    from adabias.studies import classifiers

    root = tmp_path / "data"
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        records = np.zeros((10000, 3073), np.uint8)
        records[:, 0] = np.arange(10000) % 10
        records[:32, 1:] = rng.integers(0, 256, size=(32, 3072))
        records.tofile(folder / name)
    import hashlib

    (root / "SHA256SUMS").write_text("".join(
        f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  cifar-10-batches-bin/{n}\n"
        for n in names))
    toy = dataclasses.replace(
        classifiers.FULL_SETTINGS, widths=(2, 2, 2, 2, 4, 4, 8), epochs=6, num_seeds=2,
        norm_epoch=2, train_size=16, test_size=8, chunk=8, data_root=str(root), download=False,
        checkpoint_dir=str(tmp_path / "checkpoints"))
    flow = classifiers.FlowComparisonSettings(
        train_size=40, widths=(3,), num_steps=20, num_times=2, beta_values=(0.8, 0.9),
        rho_fixed=0.95, rho_values=(0.93, 0.95), beta_fixed=0.9, rtol=1e-8, atol=1e-10)
    settings = [dataclasses.replace(cks_fig4.FULL, classifier=toy, flow=flow),
                dataclasses.replace(cks_fig5.FULL, classifier=toy, flow=flow),
                dataclasses.replace(cks_fig6.FULL, classifier=toy, flow=flow, hill_window=3)]
    experiments = [dataclasses.replace(e.EXPERIMENT, tiers=Tiers(quick=s, medium=s, full=s))
                   for e, s in zip((cks_fig4, cks_fig5, cks_fig6), settings)]
    classifiers.clear_memo()
    records = run_experiments(experiments, tmp_path / "out", force=True, progress=False)
    assert [r.status for r in records] == ["ran"] * 3, [r.error for r in records]
    assert len(list((tmp_path / "checkpoints").iterdir())) == 3  # one file per sweep
    curves = classifiers.classifier_sweep(classifiers.sweep_spec(toy, classifiers.FULL_RHO_SWEEP))
    assert curves.loss.shape == (5, 2, 7) and np.all(np.isfinite(curves.norm))
    classifiers.clear_memo()  # a second run resumes from the finished checkpoints
    again = classifiers.classifier_sweep(classifiers.sweep_spec(toy, classifiers.FULL_RHO_SWEEP))
    np.testing.assert_array_equal(again.norm, curves.norm)
