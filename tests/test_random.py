"""Packed Rademacher signs (adabias._random.rademacher) and the label noise drawn with them."""

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from adabias import problems  # noqa: E402
from adabias._random import rademacher  # noqa: E402


def test_packed_signs_are_independent_fair_signs_of_any_shape():
    num = 3000
    z = np.asarray(rademacher(jax.random.key(3), (num, 2, 37), jnp.float64))  # 37: a word and 5 bits
    assert z.shape == (num, 2, 37) and z.dtype == np.float64 and set(np.unique(z)) == {-1.0, 1.0}
    flat = z.reshape(num, -1)
    # E z = 0 and E zᵢzⱼ = δᵢⱼ (also across rows of one draw), within 5 standard errors (1/√num)
    assert np.all(np.abs(flat.mean(axis=0)) < 5 / np.sqrt(num))
    assert np.all(np.abs(flat.T @ flat / num - np.eye(flat.shape[1])) < 5 / np.sqrt(num))
    assert rademacher(jax.random.key(0), (), jnp.float32).shape == ()


def test_label_noise_signs_are_fair_and_independent_across_keys_and_labels():
    # 50 labels as in LWL's diagonal net; one draw per key, as the engine folds the step in
    n, num = 50, 3000
    batch = {"z": jnp.zeros((n, 2)), "y": jnp.zeros(n)}
    noise = problems.label_noise(0.5)
    keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.key(9), k))(jnp.arange(num))
    xi = np.asarray(jax.vmap(lambda k: noise(k, batch)["y"])(keys)) / 0.5
    assert set(np.unique(xi)) == {-1.0, 1.0}
    assert np.all(np.abs(xi.mean(axis=0)) < 5 / np.sqrt(num))
    assert np.all(np.abs(xi.T @ xi / num - np.eye(n)) < 5 / np.sqrt(num))
    # consecutive steps are uncorrelated: E ξ_k,i ξ_{k+1},i = 0
    assert np.all(np.abs((xi[:-1] * xi[1:]).mean(axis=0)) < 5 / np.sqrt(num))
