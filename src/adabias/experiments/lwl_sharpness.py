"""LWL: with label noise SGD reduces tr(H), Adam reduces tr(Diag(H)^{1/2}) (diagonal net).

The paper's central claim (LWL, DESIGN §3.5): near the manifold Γ of interpolators, label-noise
SGD drifts so as to reduce tr(H) and Adam so as to reduce tr(Diag(H)^{1/2}). Label noise
y ← y + δξ on the diagonal net, SGD and Adam (the AGM form: no bias correction, ε outside the
root) from the same initialization, each trained as one program over seeds. Along training
both measures are recorded with the diagonal net's closed forms (Diag H = 4m₂⊙(u², v²) on Γ,
m₂ = mean_i z_i²):

    tr(H) = 4 Σ_j m₂ⱼ(u_j² + v_j²)   (exact everywhere for this net),
    tr(Diag(H)^{1/2}) = 2 Σ_j √m₂ⱼ (|u_j| + |v_j|)   (on Γ; the iterates stay within O(√η)).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from adabias._validation import require_x64
from adabias.experiments.base import ClaimSpec, Context, Decision, Experiment, Tiers, Verdict
from adabias.plot import TRACE_H, diag_power_trace_label, panels
from adabias.plot.measures import mark_step, reference_level, step_axes, train_and_test
from adabias.problems.diagonal_net import (
    diagonal_net_balanced_point,
    diagonal_net_diag_power_trace,
    diagonal_net_test_loss,
)
from adabias.studies import label_noise
from adabias.studies.curves import first_index_below
from adabias.studies.label_noise import DiagonalNetLabelNoise


@dataclasses.dataclass(frozen=True, kw_only=True)
class SharpnessSettings(DiagonalNetLabelNoise):
    """The shared diagonal-net problem and training, and SGD's learning rate."""

    sgd_learning_rate: float = 0.05  # η of SGD (stable with label noise at this δ)


FULL = label_noise.toward_authors_scale(SharpnessSettings())
TIERS = Tiers(quick=SharpnessSettings(), medium=FULL, full=FULL)


class SharpnessRecord(NamedTuple):
    steps: np.ndarray  # (record,)
    curves: dict  # "SGD", "Adam" -> {"root_diag_trace", "test_loss", "trace_h", "loss"}: seed means
    at_w_star: dict  # both measures at the balanced sparse interpolant u = √w*, v = 0 (a point of Γ)


def measure(settings: SharpnessSettings, context: Context) -> SharpnessRecord:
    require_x64("lwl.sharpness")
    batch, w_star = label_noise.diagonal_net_data(settings)
    z = batch["z"]
    metrics = {
        "trace_h": lambda p: diagonal_net_diag_power_trace(p, z, 1.0),
        "root_diag_trace": lambda p: diagonal_net_diag_power_trace(p, z, 0.5),
        "test_loss": lambda p: diagonal_net_test_loss(p, w_star),
    }
    factories = label_noise.optimizer_factories(beta1=settings.beta1, beta2=settings.beta2, eps=settings.eps)
    rates = {"SGD": settings.sgd_learning_rate, "Adam": settings.adam_learning_rate}
    results = {name: label_noise.train_diagonal_net(settings, batch, factories[name.lower()],
                                                    grid={"learning_rate": [rate]}, metrics=metrics,
                                                    progress=context.progress)
               for name, rate in rates.items()}
    curves = {name: {key: label_noise.seed_mean(values, result.grid_shape)[0]
                     for key, values in dict(result.trajectory.metrics, loss=result.trajectory.loss).items()}
              for name, result in results.items()}
    point = diagonal_net_balanced_point(w_star)
    at_w_star = {"trace_h": float(diagonal_net_diag_power_trace(point, z, 1.0)),
                 "root_diag_trace": float(diagonal_net_diag_power_trace(point, z, 0.5))}
    return SharpnessRecord(np.asarray(results["SGD"].trajectory.steps[0]), curves, at_w_star)


def _late(settings: SharpnessSettings, record: SharpnessRecord) -> dict:
    last = settings.last_records
    return {name: {key: float(values[-last:].mean()) for key, values in m.items()}
            for name, m in record.curves.items()}


def _drop(settings: SharpnessSettings, record: SharpnessRecord, name: str, key: str):
    m = record.curves[name]
    return label_noise.measure_drop(m[key], m["loss"], small_loss=settings.small_loss,
                                    last_records=settings.last_records)


def decide(settings: SharpnessSettings, record: SharpnessRecord) -> Decision:
    sgd = _drop(settings, record, "SGD", "trace_h")
    adam = _drop(settings, record, "Adam", "root_diag_trace")
    late = _late(settings, record)
    own_ok = (late["SGD"]["trace_h"] < late["Adam"]["trace_h"]
              and late["Adam"]["root_diag_trace"] < late["SGD"]["root_diag_trace"])
    verdicts = [
        Verdict("lwl.sharpness.sgd", sgd.decreased, sgd.numbers(record.steps),
                sgd.reason("SGD's tr(H)", settings.small_loss)),
        Verdict("lwl.sharpness.adam", adam.decreased, adam.numbers(record.steps),
                adam.reason("Adam's tr(Diag(H)^{1/2})", settings.small_loss)),
        Verdict("lwl.sharpness.own_measure", own_ok,
                {"late_trace_h": {n: late[n]["trace_h"] for n in late},
                 "late_root_diag_trace": {n: late[n]["root_diag_trace"] for n in late},
                 "late_test_loss": {n: late[n]["test_loss"] for n in late},
                 "at_balanced_w_star": record.at_w_star,
                 "late_train_loss": {n: late[n]["loss"] for n in late}},
                "" if own_ok else
                f"late tr(H): SGD {late['SGD']['trace_h']:.4g}, Adam {late['Adam']['trace_h']:.4g}; late "
                f"tr(Diag(H)^{{1/2}}): SGD {late['SGD']['root_diag_trace']:.4g}, Adam "
                f"{late['Adam']['root_diag_trace']:.4g}: not each lower on its own measure"),
    ]
    s = settings
    notes = [
        f"Diagonal net d = {s.d}, n = {s.n}, k = {s.k}, Gaussian features "
        f"(data seed {s.data_seed}, chosen with a linear program so that the minimizer of tr(H) "
        f"on Γ is not the sparse w*: the two measures have different minimizers), label noise "
        f"δ = {s.delta}, init u = v = "
        f"{s.init_scale}·g, {s.num_seeds} seeds, {s.num_steps} steps, float64.",
        f"Learning rates: SGD η = {s.sgd_learning_rate}, Adam (β₁ = {s.beta1}, β₂ = {s.beta2}, ε = {s.eps}) "
        f"η = {s.adam_learning_rate}. In the slow time t = kη² SGD's flow shrinks inactive "
        "coordinates at rate 2αm₂ (α = δ²/n), i.e. by e per 1/(2αm₂η²) steps, and Adam's moves u² by about "
        "−1/m₂ per unit t, i.e. u₀² ≈ 0.25 in 0.25/η² steps: with these η both are of order 10⁴ steps, "
        "both reach loss ≤ 1e-2 within the first records, and SGD at η = 0.05 stays stable.",
        "tr(Diag(H)^{1/2}) on Γ is an ℓ_{1/2}-type, non-convex function of w: every sparse vertex of "
        "{Zw = y} is a local minimizer, so Adam's flow ends at the local minimizer its path leads to, "
        "which need not have a lower value than the point where SGD ends. Adam also moves every "
        "coordinate by about ±η per step (g/√v = O(1)), so vanishing coordinates keep |u| = O(η) "
        "at the iterates.",
        f"'Late' = mean over the last {s.last_records} records and the seeds; the comparison point is the first "
        f"record where the seed-mean loss is ≤ {s.small_loss:g}.",
    ]
    return Decision(verdicts, notes)


def plot(settings: SharpnessSettings, record: SharpnessRecord) -> dict:
    steps = record.steps
    figure, axes = panels(1, 3, width=3.6, height=3.0)
    for ax, key in zip(axes[0, :2], ["trace_h", "root_diag_trace"]):
        reference_level(ax, record.at_w_star[key], label="at balanced w*")
    for index, (name, m) in enumerate(record.curves.items()):
        color = f"C{index}"
        axes[0, 0].plot(steps, m["trace_h"], color=color, label=name)
        axes[0, 1].plot(steps, m["root_diag_trace"], color=color, label=name)
        train_and_test(axes[0, 2], steps, m["loss"], m["test_loss"], color=color,
                       train_label=f"{name} train loss", test_label=f"{name} ‖w − w*‖²")
        start = first_index_below(m["loss"], settings.small_loss, or_equal=True)
        if start >= 0:
            mark_step(axes[0, :2], steps[start], color=color)
    root = diag_power_trace_label("1/2")
    step_axes(axes[0], ["SGD's measure " + TRACE_H, "Adam's measure " + root, "losses (seed mean)"],
              [TRACE_H, root, "loss"])
    figure.suptitle(f"Label noise δ = {settings.delta} on a diagonal net (d = {settings.d}, "
                    f"n = {settings.n}); dotted: loss first ≤ {settings.small_loss:g}")
    return {"measures": figure}


def tables(settings: SharpnessSettings, record: SharpnessRecord) -> dict:
    return {"curves": {"step": record.steps, **{f"{name}_{key}": values for name, m in record.curves.items()
                                                for key, values in m.items()}}}


EXPERIMENT = Experiment(
    id="lwl.sharpness", paper="LWL", title="Label noise: SGD reduces tr(H), Adam reduces tr(Diag(H)^{1/2})",
    tiers=TIERS,
    claims={
        "lwl.sharpness.sgd": ClaimSpec(
            "After the loss is small, label-noise SGD decreases tr(H) "
            "(seed mean over the last records < value when the loss first falls below the threshold).",
            "theory", "seed mean of tr(H) over the last 5 records < its seed mean at the first record "
            "where the seed-mean loss ≤ 1e-2"),
        "lwl.sharpness.adam": ClaimSpec(
            "After the loss is small, label-noise Adam decreases tr(Diag(H)^{1/2}) "
            "(same comparison).",
            "theory", "seed mean of tr(Diag(H)^{1/2}) over the last 5 records < its seed mean at the "
            "first record where the seed-mean loss ≤ 1e-2"),
        "lwl.sharpness.own_measure": ClaimSpec(
            "At the end each optimizer has the lower value of its own measure: "
            "tr(H)_SGD < tr(H)_Adam and tr(Diag(H)^{1/2})_Adam < tr(Diag(H)^{1/2})_SGD.",
            "paper", "seed means at the end compared on both measures"),
    },
    measure=measure, decide=decide, plot=plot, tables=tables,
)
