"""beyond.memory_flows and beyond.edge_of_stability on tiny settings through the report runner:
every declared claim decided, figures and data written, claims that follow from the data."""

import csv
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import adabias as ab  # noqa: E402
from adabias.experiments import PAPER_ORDER, REGISTRY, Tiers  # noqa: E402
from adabias.experiments import beyond_memory_flows  # noqa: E402
from adabias.report import run_experiments  # noqa: E402


def _run_tiny(tmp_path, experiment_id, **settings):
    exp = REGISTRY[experiment_id]
    quick = dataclasses.replace(exp.tiers.quick, **settings)
    tiny = dataclasses.replace(exp, tiers=Tiers(quick=quick, medium=quick, full=quick))
    (record,) = run_experiments([tiny], tmp_path, progress=False, version="test")
    assert record.status == "ran", record.error
    assert {c["id"] for c in record.claims} == set(exp.claims)
    for stem in record.figures:
        assert (tmp_path / "figures" / f"{stem}.png").exists()
    return {c["id"]: c for c in record.claims}


def _csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_both_experiments_are_registered_after_the_papers():
    assert list(PAPER_ORDER[-2:]) == ["beyond.memory_flows", "beyond.edge_of_stability"]
    assert list(REGISTRY)[-2:] == ["beyond.memory_flows", "beyond.edge_of_stability"]
    assert all(REGISTRY[i].paper == "beyond" for i in PAPER_ORDER[-2:])


def test_memory_flows_tiny_run_decides_its_claims_from_its_data(tmp_path):
    claims = _run_tiny(tmp_path, "beyond.memory_flows", step_sizes=(2e-3, 1e-3), horizon=0.01)
    rows = _csv(tmp_path / "data" / "beyond.memory_flows.errors.csv")
    assert {r["optimizer"] for r in rows} == set(beyond_memory_flows.OPTIMIZERS)
    for name in beyond_memory_flows.OPTIMIZERS:
        errors = [float(r["error"]) for r in rows if r["optimizer"] == name and r["order"] == "1"]
        slope = np.log(errors[0] / errors[1]) / np.log(2.0)
        claim = claims[f"beyond.memory_flows.{name}"]
        np.testing.assert_allclose(claim["numbers"]["local_slope_smallest_h"]["bilinear"], slope)
        assert claim["held"] == (abs(slope - 2.0) < 0.3)
        assert claim["held"] or claim["note"]


def test_switched_transform_is_the_chosen_optimizer():
    optimizers = [ab.optim.adam(1e-2, 0.8, 0.9, 1e-3), ab.optim.smoothed_signum(1e-2, 0.8, 1e-2)]
    loss = lambda p: jnp.sum((p - 1.0) ** 2 * jnp.arange(1.0, 4.0))
    for index, optimizer in enumerate(optimizers):
        alone = ab.run(optimizer, loss, jnp.zeros(3), 20).params
        chosen = ab.run(beyond_memory_flows.switched(optimizers, index), loss, jnp.zeros(3), 20)
        np.testing.assert_array_equal(np.asarray(chosen.params), np.asarray(alone))


def test_edge_of_stability_tiny_run_finds_the_jump(tmp_path):
    claims = _run_tiny(tmp_path, "beyond.edge_of_stability", design_ratios=(0.05, 0.4, 3.2),
                       steps_at_largest=4, sharpness_points=4)
    rows = _csv(tmp_path / "data" / "beyond.edge_of_stability.errors.csv")
    ratios = np.array([float(r["max_stability_ratio"]) for r in rows])
    errors = np.array([float(r["error"]) for r in rows])
    # the measured ratio at the start is the designed one (P ≈ √ε near the teacher)
    np.testing.assert_allclose(ratios, [0.05, 0.4, 3.2], rtol=1e-3)
    jump = claims["beyond.edge_of_stability.jump"]
    np.testing.assert_allclose(jump["numbers"]["jump_factor"], errors[2] / errors[:2].max())
    assert jump["held"] == (errors[2] / errors[:2].max() >= 10.0)
    # no pair of h lies below r_c/2 at these ratios: the tracking claim says so
    tracking = claims["beyond.edge_of_stability.tracking"]
    assert not tracking["held"] and "no pair" in tracking["note"]
