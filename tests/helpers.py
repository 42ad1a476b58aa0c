"""Pieces several test modules share: a small smooth loss, and experiments run on tiny settings."""

import csv
import dataclasses

import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

def smooth_params():
    """A start for :func:`smooth_loss`: two leaves, so pytree handling is exercised. Made on
    call, so its dtype follows the caller's ``jax_enable_x64``."""
    return {"w": jnp.array([0.7, -1.3]), "b": jnp.array([0.4])}


def smooth_loss(params):
    """A smooth non-quadratic loss on ``smooth_params()``-shaped pytrees (non-zero third derivatives)."""
    w, b = params["w"], params["b"][0]
    return (0.5 * (w[0] * w[1] - b - 1.5) ** 2 + 0.1 * jnp.sum(w**4) / 4
            + jnp.sin(b) + 0.3 * w[0] * b**2)


def flat(tree):
    return np.asarray(ravel_pytree(tree)[0])


def run_tiny(tmp_path, experiment_id, **settings):
    """The registered experiment with its quick settings changed by ``settings``, run through the
    report's runner into ``tmp_path``; checks that it ran, decided every declared claim and wrote
    its figures; returns the runner's record."""
    from adabias.experiments import REGISTRY, Tiers
    from adabias.report import run_experiments

    exp = REGISTRY[experiment_id]
    quick = dataclasses.replace(exp.tiers.quick, **settings)
    tiny = dataclasses.replace(exp, tiers=Tiers(quick=quick, medium=quick, full=quick))
    (record,) = run_experiments([tiny], tmp_path, progress=False, version="test")
    assert record.status == "ran", record.error
    assert {c["id"] for c in record.claims} == set(exp.claims)
    assert record.figures
    for stem in record.figures:
        assert (tmp_path / "figures" / f"{stem}.png").exists()
    return record


def read_csv(path):
    """A data CSV of the report as {column: float array}."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}
