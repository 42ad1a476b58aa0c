"""beyond.memory_flows and beyond.edge_of_stability on tiny settings through the report runner:
every declared claim decided, figures and data written, claims that follow from the data."""

import csv

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import adabias as ab  # noqa: E402
from adabias.experiments import PAPER_ORDER, REGISTRY  # noqa: E402
from adabias.experiments import beyond_memory_flows  # noqa: E402
from helpers import run_tiny  # noqa: E402


def _run_tiny(tmp_path, experiment_id, **settings):
    """The experiment on tiny settings (helpers.run_tiny); its claims by id."""
    return {c["id"]: c for c in run_tiny(tmp_path, experiment_id, **settings).claims}


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
    assert {r["model"] for r in rows} == set(beyond_memory_flows.MODELS)
    order0_held = True
    for name in beyond_memory_flows.OPTIMIZERS:
        claim = claims[f"beyond.memory_flows.{name}"]
        held = True
        for model in beyond_memory_flows.MODELS:
            mine = [r for r in rows if r["optimizer"] == name and r["model"] == model]
            slopes = {order: np.log2(float(pair[0]["error"]) / float(pair[1]["error"]))
                      for order in ("1", "0")
                      for pair in [[r for r in mine if r["order"] == order]]}
            np.testing.assert_allclose(claim["numbers"][f"slope_{model}"], slopes["1"])
            held &= abs(slopes["1"] - 2.0) < 0.3
            order0_held &= abs(slopes["0"] - 1.0) < 0.3
            # the window the flow probed: max(β₁, β₂) = 0.9, β₁ = 0.8 for the momentum-only
            decay = 0.8 if name in ("nesterov", "smoothed_signum") else 0.9
            np.testing.assert_allclose([float(r["probed_decay"]) for r in mine], decay,
                                       rtol=1e-12)
            assert {int(r["window"]) for r in mine} == {
                ab.flows.memory_window(decay, truncation=1e-12)}
        assert claim["held"] == held
        assert held or "outside 2 ± 0.3" in claim["note"]
    assert claims["beyond.memory_flows.order0"]["held"] == order0_held
    assert order0_held or claims["beyond.memory_flows.order0"]["note"]


def test_memory_flows_without_a_model_is_undecided():
    errors = beyond_memory_flows.ModelErrors(
        np.full((8, 2), 1e-4) * [4.0, 1.0], np.full((8, 2), 1e-2) * [2.0, 1.0],
        np.full(8, 0.9), np.full(8, 295), 1.0, 1.0)
    record = beyond_memory_flows.MemoryFlowsRecord(np.array([2e-3, 1e-3]), {"bilinear": errors})
    decision = beyond_memory_flows.decide(beyond_memory_flows.MemoryFlowsSettings(), record)
    assert len(decision.verdicts) == 9
    for verdict in decision.verdicts:
        assert not verdict.held and verdict.note.startswith("undecided: the run has no tanh_net")


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
