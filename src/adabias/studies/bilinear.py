"""Adam sweeps on the CKS bilinear model, measured at their end points (CKS §5, Figures 2, 3).

E(θ) = ½(y − θ₁θ₂x)² from θ⁽⁰⁾ = (2.8, 3.5) (:mod:`adabias.problems.bilinear`). At a given loss
‖∇E‖₁ = x|r|·s(θ), s = |θ₁| + |θ₂|, smallest (2√(y/x)) at the cross. The end point of a run is
measured by s̄, the mean of s over the last ``window_fraction`` of the steps (full-batch Adam
with small ε keeps oscillating around the minimum set; the mean removes the oscillation, its
peak-to-peak is reported as the jitter).

The approach of a member to the minimum set ends at the first step where the residual is smaller
than what one memory length of sign steps changes, |r| ≤ h·x·(|θ₁|+|θ₂|)/(1 − max(β, ρ)); the
modified flow is compared there only.

Overlay: the first-order modified flow (2.2)–(2.3), ``flows.adam_full_batch(order=1)``, and the
order-0 flow (ε-signGD) are solved on each member's approach. Past its end the EMA memory spans
the landing, the gradient tends to 0 (so ε is no longer small against it) and the
backward-error expansion does not apply; the iterates then oscillate around the minimum set.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import adabias as ab
from adabias import flows
from adabias.problems.bilinear import (BILINEAR_START, BILINEAR_X, bilinear_loss,
                                       bilinear_min_one_norm_point, bilinear_one_norm_per_residual,
                                       bilinear_residual)

#: The flow is also compared on the part of the approach with E ≥ this fraction of E(θ⁽⁰⁾).
FAR_LOSS_FRACTION = 1e-2

#: Adam's hyperparameters, in the order they are put on the sweep grid.
HYPERPARAMETERS = ("learning_rate", "beta1", "beta2", "eps")


class SweepSpec(NamedTuple):
    """One sweep: Adam's hyperparameter ``name`` (learning_rate, beta1 or beta2) takes
    ``values``; ``fixed`` gives the other three of h, β, ρ, ε."""

    name: str
    values: tuple[float, ...]
    fixed: Mapping[str, float]


class Sweep(NamedTuple):
    """One ``ab.sweep`` over one hyperparameter of Adam on the bilinear model, measured.

    Per member i (arrays with a leading member axis): ``params`` (steps+1, 2) at every step,
    ``loss`` (steps+1,), ``learning_rate``/``beta1``/``beta2``/``eps`` its settings; ``s_mean``
    and ``s_jitter`` the mean and peak-to-peak of s = |θ₁|+|θ₂| over the end window (from step
    ``window_start``); ``window_max_loss`` the largest loss there; ``approach_steps`` the step
    where the flow comparison ends (:func:`approach_end`).
    """

    name: str
    values: np.ndarray
    fixed: dict
    num_steps: int
    params: np.ndarray
    loss: np.ndarray
    diverged_at: np.ndarray
    learning_rate: np.ndarray
    beta1: np.ndarray
    beta2: np.ndarray
    eps: np.ndarray
    window_start: int
    s_mean: np.ndarray
    s_jitter: np.ndarray
    window_max_loss: np.ndarray
    approach_steps: np.ndarray


def approach_end(params: np.ndarray, learning_rate: float, beta1: float, beta2: float) -> int:
    """First step n with |r(θ⁽ⁿ⁾)| ≤ h·x·(|θ₁|+|θ₂|)/(1 − max(β, ρ)) (the end of the approach).

    ``params`` has shape (steps, 2), one row per step. Returns the last step if never reached.
    """
    params = np.asarray(params)
    memory = 1.0 / (1.0 - max(beta1, beta2))
    threshold = learning_rate * BILINEAR_X * bilinear_one_norm_per_residual(params) * memory
    reached = np.abs(bilinear_residual(params)) <= threshold
    return int(np.argmax(reached)) if reached.any() else len(params) - 1


def run_sweep(spec: SweepSpec, num_steps: int, *, window_fraction: float = 0.1,
              progress: bool = False) -> Sweep:
    """Bias-corrected Adam (CKS Def. 2.1, ε inside the root) from θ⁽⁰⁾ for every value of
    ``spec.name``, the others from ``spec.fixed``: one ``ab.sweep`` call (all four
    hyperparameters traced, one compiled program), then the end-point measure and the end of
    each member's approach (the flows come from :func:`add_flows`).
    """
    name, values = spec.name, spec.values
    if name not in HYPERPARAMETERS[:3]:
        raise ValueError(f"name must be learning_rate, beta1 or beta2, got name={name!r}")
    missing = set(HYPERPARAMETERS) - {name} - set(spec.fixed)
    if missing:
        raise ValueError(f"fixed must give {sorted(missing)}, got fixed={dict(spec.fixed)!r}")
    if not 0.0 < window_fraction <= 1.0:
        raise ValueError(f"window_fraction must lie in (0, 1], got window_fraction={window_fraction!r}")
    fixed = {k: float(spec.fixed[k]) for k in HYPERPARAMETERS if k != name}
    # every hyperparameter is a grid axis (the fixed ones with one value), so all are traced and
    # sweeps of the same size and length share one compiled program
    grid = {k: [v] for k, v in fixed.items()}
    grid[name] = list(values)
    result = ab.sweep(ab.optim.adam, bilinear_loss, jnp.asarray(BILINEAR_START), int(num_steps),
                      grid=grid, progress=progress)
    hyper = {k: np.asarray(v) for k, v in result.hyperparams.items()}
    params = np.asarray(result.trajectory.params)
    loss = np.asarray(result.trajectory.loss)
    window_start = int(num_steps - max(1, round(window_fraction * num_steps)))
    s = bilinear_one_norm_per_residual(params[:, window_start:])
    approach = np.array([approach_end(params[i], hyper["learning_rate"][i], hyper["beta1"][i],
                                      hyper["beta2"][i]) for i in range(result.num_members)])
    return Sweep(
        name=name, values=hyper[name], fixed=fixed, num_steps=int(num_steps), params=params,
        loss=loss, diverged_at=np.asarray(result.trajectory.diverged_at),
        learning_rate=hyper["learning_rate"], beta1=hyper["beta1"], beta2=hyper["beta2"],
        eps=hyper["eps"], window_start=window_start, s_mean=s.mean(axis=1),
        s_jitter=np.ptp(s, axis=1), window_max_loss=loss[:, window_start:].max(axis=1),
        approach_steps=approach,
    )


class MonotoneDecision(NamedTuple):
    """Whether the end points moved monotonically along a sweep, the numbers, and why not."""

    held: bool
    numbers: dict
    note: str


def monotone_decision(sweep: Sweep, *, direction: int, loss_tolerance: float) -> MonotoneDecision:
    """Whether the end points move monotonically along the sweep, and the numbers.

    ``direction`` = −1: s̄ = mean |θ₁|+|θ₂| over the end window must strictly decrease along the
    sweep (towards smaller ‖∇E‖₁, the cross); +1: strictly increase. Held iff (i) every member
    converged (no divergence, loss ≤ ``loss_tolerance`` over the whole end window), (ii) s̄ is
    strictly monotone in ``direction``, and (iii) each consecutive step |Δs̄| exceeds the larger
    end-window peak-to-peak of s of the two members (the shift is resolved, not jitter).
    """
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 or +1, got direction={direction!r}")
    steps = np.diff(sweep.s_mean)
    jitter = np.maximum(sweep.s_jitter[:-1], sweep.s_jitter[1:])
    converged = (sweep.diverged_at < 0) & (sweep.window_max_loss <= loss_tolerance)
    monotone = bool(np.all(direction * steps > 0))
    resolved = bool(np.all(np.abs(steps) > jitter))
    held = bool(np.all(converged)) and monotone and resolved
    cross = np.asarray(bilinear_min_one_norm_point())
    numbers = {   # the decision's numbers first (the report's headline)
        "monotone": monotone, "smallest_step_over_jitter": float(np.min(np.abs(steps) / jitter)),
        "all_converged": bool(np.all(converged)), "steps_exceed_jitter": resolved,
        "expected_sign_of_steps": direction, "s_mean": sweep.s_mean, "s_steps": steps,
        "s_jitter": sweep.s_jitter, sweep.name: sweep.values, "window_max_loss": sweep.window_max_loss,
        "loss_tolerance": loss_tolerance, "converged": converged, "diverged_at": sweep.diverged_at,
        "end_distance_to_cross": np.linalg.norm(sweep.params[:, -1] - cross, axis=-1),
        "s_at_cross": float(np.sum(cross)),
    }
    reasons = [text for failed, text in (
        (not np.all(converged), "not every run converged"),
        (not monotone, "s̄ is not strictly monotone in the expected direction"),
        (not resolved, "a step of s̄ is within the end-point jitter")) if failed]
    return MonotoneDecision(held, numbers, "; ".join(reasons))


def describe(values: Mapping[str, float], symbols: Mapping[str, str]) -> str:
    """Hyperparameters as the paper writes them, e.g. ``ρ = 0.95, h = 0.002, ε = 1e-08``."""
    return ", ".join(f"{symbols[k]} = {v:g}" for k, v in values.items())


def member_labels(sweep: Sweep, symbols: Mapping[str, str]) -> list[str]:
    """One label per member, e.g. ``β = 0.9``."""
    return [describe({sweep.name: value}, symbols) for value in sweep.values]


def final_losses(sweep: Sweep) -> list[str]:
    """The members' final losses, formatted for a note (``['1.2e-13', …]``)."""
    return [f"{v:.1e}" for v in sweep.loss[:, -1]]


def paths_table(sweep: Sweep, every: int) -> dict:
    """Iterates every ``every`` steps, long format: member value, step, t, θ₁, θ₂, loss."""
    steps = np.arange(0, sweep.num_steps + 1, every)
    members = len(sweep.values)
    return {
        sweep.name: np.repeat(sweep.values, len(steps)),
        "step": np.tile(steps, members),
        "t": (sweep.learning_rate[:, None] * steps[None, :]).ravel(),
        "theta1": sweep.params[:, steps, 0].ravel(),
        "theta2": sweep.params[:, steps, 1].ravel(),
        "loss": sweep.loss[:, steps].ravel(),
    }



# --- the modified-flow overlay ----------------------------------------------------------------


def solve_rescaled(field, start: jax.Array, us: np.ndarray, duration: jax.Array) -> jax.Array:
    """θ(u·duration) for u in ``us`` ⊂ [0, 1] of the autonomous θ̇ = field(t, θ, args),
    θ(0) = ``start``: solves dθ/du = duration·field(θ) (the one call of
    :func:`adabias.flows.solve` in this study)."""
    return flows.solve(lambda t, theta, args: duration * field(t, theta, args), start, us)


def flow_paths(learning_rate: jax.Array, beta1: jax.Array, beta2: jax.Array, eps: jax.Array,
               duration: jax.Array, *, num_points: int) -> jax.Array:
    """Adam's modified flow (2.2)–(2.3) from θ⁽⁰⁾ for a batch of settings, at t = duration·k/num_points.

    Each member solves θ̇ = f(θ), f = ``flows.adam_full_batch(order=1)`` with its h, β, ρ, ε, on
    [0, duration] in the rescaled time u = t/duration ∈ [0, 1] (:func:`solve_rescaled`), so one
    vmapped solve (one compilation) serves members with different h and durations. The h of
    (2.3) only scales the bias: a member with ``learning_rate`` = 0 follows the order-0 flow
    θ̇ = −∇E/√(∇E² + ε) (ε-signGD); its time span comes from ``duration`` alone.
    Returns shape (members, num_points + 1, 2).
    """
    us = np.linspace(0.0, 1.0, num_points + 1)
    start = jnp.asarray(BILINEAR_START)

    def one(h, b, r, e, t_end):
        return solve_rescaled(flows.adam_full_batch(bilinear_loss, h, b, r, e, order=1), start, us, t_end)

    return jax.vmap(one)(jnp.asarray(learning_rate), jnp.asarray(beta1), jnp.asarray(beta2),
                         jnp.asarray(eps), jnp.asarray(duration))


class FlowOverlay(NamedTuple):
    """The modified flows of one :class:`Sweep` on its members' approaches, and their distance
    to the iterates.

    ``flow`` and ``flow0`` the order-1 and order-0 flows (members, flow_points + 1, 2) at equally
    spaced times on [0, approach_steps·h]; ``flow_error``/``flow0_error`` their sup-distance
    (∞-norm) to the iterates over every step of the approach, ``flow_error_far`` the same over
    the steps with E ≥ ``FAR_LOSS_FRACTION``·E₀; ``s_flow_end``/``s_iterate_at_flow_end``
    |θ₁|+|θ₂| of flow and iterate at the end of the approach.
    """

    flow_points: int
    flow: np.ndarray
    flow0: np.ndarray
    flow_error: np.ndarray
    flow_error_far: np.ndarray
    flow0_error: np.ndarray
    s_flow_end: np.ndarray
    s_iterate_at_flow_end: np.ndarray


def add_flows(sweeps: Sequence[Sweep], *, flow_points: int) -> list[FlowOverlay]:
    """The order-1 and order-0 flows of every member of ``sweeps`` on its approach, with their
    sup-distance to the iterates, one :class:`FlowOverlay` per sweep (one vmapped solve over
    both orders and all members of all sweeps; order 0 is (2.2) with the bias's h set to 0, see
    :func:`flow_paths`).
    """
    if not isinstance(flow_points, (int, np.integer)) or flow_points < 2:
        raise ValueError(f"flow_points must be an integer ≥ 2, got flow_points={flow_points!r}")
    column = {k: np.concatenate([getattr(s, k) for s in sweeps])
              for k in ("learning_rate", "beta1", "beta2", "eps")}
    duration = np.concatenate([s.approach_steps * s.learning_rate for s in sweeps])
    total = len(duration)
    paths = np.asarray(flow_paths(
        np.concatenate([column["learning_rate"], np.zeros(total)]),
        *(np.tile(column[k], 2) for k in ("beta1", "beta2", "eps")),
        np.tile(duration, 2), num_points=int(flow_points)))
    both = {1: paths[:total], 0: paths[total:]}
    overlays, start = [], 0
    for s in sweeps:
        members = len(s.values)
        flow, flow0 = (both[order][start:start + members] for order in (1, 0))
        flow_at_steps = [_at_steps(flow[i], s.approach_steps[i]) for i in range(members)]
        flow0_at_steps = [_at_steps(flow0[i], s.approach_steps[i]) for i in range(members)]
        iterates = [s.params[i, :s.approach_steps[i] + 1] for i in range(members)]
        far = [s.loss[i, :s.approach_steps[i] + 1] >= FAR_LOSS_FRACTION * s.loss[i, 0]
               for i in range(members)]
        overlays.append(FlowOverlay(
            flow_points=int(flow_points), flow=flow, flow0=flow0,
            flow_error=np.array([_sup_distance(f, it) for f, it in zip(flow_at_steps, iterates)]),
            flow_error_far=np.array([_sup_distance(f[m], it[m])
                                     for f, it, m in zip(flow_at_steps, iterates, far)]),
            flow0_error=np.array([_sup_distance(f, it) for f, it in zip(flow0_at_steps, iterates)]),
            s_flow_end=bilinear_one_norm_per_residual(flow[:, -1]),
            s_iterate_at_flow_end=bilinear_one_norm_per_residual(
                np.stack([it[-1] for it in iterates])),
        ))
        start += members
    return overlays


def sweeps_with_flows(specs: Sequence[SweepSpec], *, num_steps: int, window_fraction: float,
                      flow_points: int, progress: bool = False
                      ) -> tuple[list[Sweep], list[FlowOverlay]]:
    """:func:`run_sweep` for every spec, then :func:`add_flows` over all of them (Figures 2–3)."""
    sweeps = [run_sweep(spec, num_steps, window_fraction=window_fraction, progress=progress)
              for spec in specs]
    return sweeps, add_flows(sweeps, flow_points=flow_points)


#: Where the flow is compared with the iterates (a report note of Figures 2 and 3).
APPROACH_NOTE = (
    "The flow (dashed) is drawn and compared on the approach only, up to the first step with "
    "|r| ≤ h·x·(|θ₁|+|θ₂|)/(1 − max(β, ρ)); at the landing the EMA memory spans the arrival, "
    "∇E → 0 and the expansion does not apply (the iterates then oscillate about the minima).")


def _sup_distance(flow: np.ndarray, iterates: np.ndarray) -> float:
    """sup_n ‖θ(nh) − θ⁽ⁿ⁾‖∞ (as ``flows.global_error``, in NumPy: the members' windows differ
    in length and a jitted version would compile once per length)."""
    return float(np.max(np.abs(flow - iterates)))


def _at_steps(path: np.ndarray, steps: int) -> np.ndarray:
    """A flow saved at ``len(path)`` equally spaced times on [0, steps·h], linearly interpolated
    to the steps n = 0, …, steps (the save grid is ≥ 2000 points: the interpolation error
    (Δt)²/8·|θ̈| is far below the distances measured)."""
    grid = np.linspace(0.0, steps, len(path))
    n = np.arange(steps + 1)
    return np.stack([np.interp(n, grid, path[:, j]) for j in range(path.shape[1])], axis=-1)


def sweep_table(sweep: Sweep, overlay: FlowOverlay) -> dict:
    """Per-member numbers as equal-length columns (the CSV behind the figure)."""
    end = sweep.params[:, -1]
    return {
        sweep.name: sweep.values, "learning_rate": sweep.learning_rate, "beta1": sweep.beta1,
        "beta2": sweep.beta2, "eps": sweep.eps, "final_theta1": end[:, 0],
        "final_theta2": end[:, 1], "final_loss": sweep.loss[:, -1],
        "window_max_loss": sweep.window_max_loss, "s_mean": sweep.s_mean,
        "s_jitter": sweep.s_jitter, "diverged_at": sweep.diverged_at,
        "approach_end_time": sweep.approach_steps * sweep.learning_rate,
        "flow_error_order1": overlay.flow_error, "flow_error_order1_far": overlay.flow_error_far,
        "flow_error_order0": overlay.flow0_error,
        "s_flow_at_approach_end": overlay.s_flow_end,
        "s_iterate_at_approach_end": overlay.s_iterate_at_flow_end,
    }


def flow_note(sweep: Sweep, overlay: FlowOverlay, symbols: Mapping[str, str]) -> str:
    """One report line: the flow-vs-iterates distance on the approach, order 1 against order 0."""
    o = overlay
    pieces = [f"{label}: {o.flow_error[i]:.1e} (order 0: {o.flow0_error[i]:.1e}; "
              f"while E ≥ {FAR_LOSS_FRACTION:g}·E₀: {o.flow_error_far[i]:.1e}; "
              f"t ≤ {sweep.approach_steps[i] * sweep.learning_rate[i]:.2f}; |θ₁|+|θ₂| there: flow "
              f"{o.s_flow_end[i]:.4f}, iterate {o.s_iterate_at_flow_end[i]:.4f})"
              for i, label in enumerate(member_labels(sweep, symbols))]
    return (f"Sweep over {symbols[sweep.name]} ({describe(sweep.fixed, symbols)}): sup-distance "
            "‖θ(t) − θ⁽ⁿ⁾‖∞ of the modified flow (2.2) to the iterates on the approach, "
            + "; ".join(pieces) + ".")
