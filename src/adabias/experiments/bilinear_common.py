"""Adam sweeps on the CKS bilinear model, shared by Figures 2 and 3 (CKS §5).

E(θ) = ½(y − θ₁θ₂x)², x = 2, y = 3/2, start θ⁽⁰⁾ = (2.8, 3.5); the minima form the hyperbola
θ₁θ₂ = y/x. With residual r = y − θ₁θ₂x the gradient is ∇E = −r·x·(θ₂, θ₁), so

    ‖∇E‖₁ = x·|r|·(|θ₁| + |θ₂|).

At a given loss (given |r|) the one-norm of the gradient is therefore ordered by
s(θ) = |θ₁| + |θ₂| = ‖∇E‖₁/(x|r|), which on the hyperbola is smallest at the cross
(√(y/x), √(y/x)), s = 2√(y/x). The end point of a run is measured by the mean of s over the
last ``window_fraction`` of the steps (full-batch Adam with small ε keeps oscillating around the
minimum set; the mean removes the oscillation, its peak-to-peak is reported as the jitter).

Overlay: the first-order modified flow (2.2)–(2.3), ``flows.adam_full_batch(order=1)``, and the
order-0 flow (ε-signGD) are solved on each member's *approach* to the minimum set: from t = 0 to
the first step at which the residual is smaller than what one memory length of sign steps
changes, |r| ≤ h·x·(|θ₁|+|θ₂|)/(1 − max(β, ρ)). Past that point the EMA memory spans the landing,
the gradient tends to 0 (so ε is no longer small against it) and the backward-error expansion
does not apply; the iterates then oscillate around the minimum set.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import adabias as ab
from adabias import flows
from adabias.experiments.plotting import panels
from adabias.problems import (BILINEAR_START, BILINEAR_X, BILINEAR_Y, bilinear_landscape,
                              bilinear_loss, bilinear_min_one_norm_point)
from matplotlib import colormaps  # noqa: E402  (after plotting: the Agg backend is set there)
from matplotlib.patches import Rectangle  # noqa: E402

#: The flow is also compared on the part of the approach with E ≥ this fraction of E(θ⁽⁰⁾).
FAR_LOSS_FRACTION = 1e-2

#: Greek symbols of the swept hyperparameters, for legends and titles.
SYMBOLS = {"learning_rate": "h", "beta1": "β", "beta2": "ρ", "eps": "ε"}


def one_norm_per_residual(params: jax.Array | np.ndarray) -> np.ndarray:
    """s(θ) = |θ₁| + |θ₂| = ‖∇E(θ)‖₁/(x|r|) for params of shape (..., 2)."""
    return np.sum(np.abs(np.asarray(params)), axis=-1)


def residual(params: jax.Array | np.ndarray) -> np.ndarray:
    """r = y − θ₁θ₂x for params of shape (..., 2)."""
    theta = np.asarray(params)
    return BILINEAR_Y - theta[..., 0] * theta[..., 1] * BILINEAR_X


def sign_flow_limit() -> np.ndarray:
    """Where ε-signGD (order 0, ε → 0) from θ⁽⁰⁾ meets the minimum set.

    While both gradient entries are large against √ε, θ̇ = −sign(∇E) = −(1, 1), so θ₂ − θ₁ = d
    is conserved: θ₁(θ₁ + d) = y/x, θ₁ = (−d + √(d² + 4y/x))/2. The first-order bias moves the
    end point off this reference.
    """
    d = BILINEAR_START[1] - BILINEAR_START[0]
    c = BILINEAR_Y / BILINEAR_X
    theta_1 = (-d + np.sqrt(d * d + 4 * c)) / 2
    return np.array([theta_1, theta_1 + d])


def approach_end(params: np.ndarray, learning_rate: float, beta1: float, beta2: float) -> int:
    """First step n with |r(θ⁽ⁿ⁾)| ≤ h·x·(|θ₁|+|θ₂|)/(1 − max(β, ρ)) (the end of the approach).

    ``params`` has shape (steps, 2), one row per step. Returns the last step if never reached.
    """
    memory = 1.0 / (1.0 - max(beta1, beta2))
    threshold = learning_rate * BILINEAR_X * one_norm_per_residual(params) * memory
    reached = np.abs(residual(params)) <= threshold
    return int(np.argmax(reached)) if reached.any() else len(params) - 1


def flow_paths(learning_rate: jax.Array, beta1: jax.Array, beta2: jax.Array, eps: jax.Array,
               duration: jax.Array, *, num_points: int) -> jax.Array:
    """Adam's modified flow (2.2)–(2.3) from θ⁽⁰⁾ for a batch of settings, at t = duration·k/num_points.

    Each member solves θ̇ = f(θ), f = ``flows.adam_full_batch(order=1)`` with its h, β, ρ, ε, on
    [0, duration] in the rescaled time u = t/duration ∈ [0, 1] (dθ/du = duration·f(θ)), so one
    vmapped solve (one compilation) serves members with different h and durations. The h of
    (2.3) only scales the bias: a member with ``learning_rate`` = 0 follows the order-0 flow
    θ̇ = −∇E/√(∇E² + ε) (ε-signGD); its time span comes from ``duration`` alone.
    Returns shape (members, num_points + 1, 2).
    """
    us = np.linspace(0.0, 1.0, num_points + 1)
    start = jnp.asarray(BILINEAR_START)

    def one(h, b, r, e, t_end):
        field = flows.adam_full_batch(bilinear_loss, h, b, r, e, order=1)
        return flows.solve(lambda theta: t_end * field(theta), start, us)

    return jax.vmap(one)(jnp.asarray(learning_rate), jnp.asarray(beta1), jnp.asarray(beta2),
                         jnp.asarray(eps), jnp.asarray(duration))


@dataclasses.dataclass
class SweepOutcome:
    """One ``ab.sweep`` over one hyperparameter of Adam on the bilinear model, measured.

    Per member i (arrays with a leading member axis): ``params`` (steps+1, 2) at every step,
    ``loss`` (steps+1,), ``learning_rate``/``beta1``/``beta2``/``eps`` its settings; ``s_mean``
    and ``s_jitter`` the mean and peak-to-peak of s = |θ₁|+|θ₂| over the end window;
    ``window_max_loss`` the largest loss there; ``approach_steps`` the step where the flow
    comparison ends (:func:`approach_end`). Filled by :func:`add_flows`: ``flow`` and ``flow0``
    the order-1 and order-0 flows at ``flow_points + 1`` equally spaced times on
    [0, approach_steps·h]; ``flow_error``/``flow0_error`` their sup-distance (∞-norm) to the
    iterates over every step of the approach; ``s_flow_end``/``s_iterate_at_flow_end`` |θ₁|+|θ₂| of flow and iterate at the
    end of the approach.
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
    flow_points: int
    flow: Optional[np.ndarray] = None
    flow0: Optional[np.ndarray] = None
    flow_error: Optional[np.ndarray] = None
    flow0_error: Optional[np.ndarray] = None
    flow_error_far: Optional[np.ndarray] = None
    s_flow_end: Optional[np.ndarray] = None
    s_iterate_at_flow_end: Optional[np.ndarray] = None

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.name]

    def label(self, index: int) -> str:
        return f"{self.symbol} = {self.values[index]:g}"

    def setting_text(self) -> str:
        """The fixed hyperparameters, e.g. ``ρ = 0.95, h = 0.002, ε = 1e-08``."""
        return ", ".join(f"{SYMBOLS[k]} = {v:g}" for k, v in self.fixed.items())

    def table(self) -> dict:
        """Per-member numbers as equal-length columns (the CSV behind the figure)."""
        end = self.params[:, -1]
        return {
            self.name: self.values, "learning_rate": self.learning_rate, "beta1": self.beta1,
            "beta2": self.beta2, "eps": self.eps, "final_theta1": end[:, 0],
            "final_theta2": end[:, 1], "final_loss": self.loss[:, -1],
            "window_max_loss": self.window_max_loss, "s_mean": self.s_mean,
            "s_jitter": self.s_jitter, "diverged_at": self.diverged_at,
            "approach_end_time": self.approach_steps * self.learning_rate,
            "flow_error_order1": self.flow_error, "flow_error_order1_far": self.flow_error_far, "flow_error_order0": self.flow0_error,
            "s_flow_at_approach_end": self.s_flow_end,
            "s_iterate_at_approach_end": self.s_iterate_at_flow_end,
        }

    def paths(self, every: int) -> dict:
        """Iterates every ``every`` steps, long format: member value, step, t, θ₁, θ₂, loss."""
        steps = np.arange(0, self.num_steps + 1, every)
        members = len(self.values)
        return {
            self.name: np.repeat(self.values, len(steps)),
            "step": np.tile(steps, members),
            "t": (self.learning_rate[:, None] * steps[None, :]).ravel(),
            "theta1": self.params[:, steps, 0].ravel(),
            "theta2": self.params[:, steps, 1].ravel(),
            "loss": self.loss[:, steps].ravel(),
        }


def run_sweep(name: str, values: Sequence[float], fixed: Mapping[str, float], num_steps: int, *,
              window_fraction: float = 0.1, flow_points: int = 2000,
              progress: bool = False) -> SweepOutcome:
    """Bias-corrected Adam (CKS Def. 2.1, ε inside the root) from θ⁽⁰⁾ for every value of
    ``name`` (one of ``learning_rate``, ``beta1``, ``beta2``), the others from ``fixed``:
    one ``ab.sweep`` call (all four hyperparameters traced, one compiled program), then the end-point
    measure and the end of each member's approach (the flows come from :func:`add_flows`).
    """
    if name not in ("learning_rate", "beta1", "beta2"):
        raise ValueError(f"name must be learning_rate, beta1 or beta2, got name={name!r}")
    missing = {"learning_rate", "beta1", "beta2", "eps"} - {name} - set(fixed)
    if missing:
        raise ValueError(f"fixed must give {sorted(missing)}, got fixed={dict(fixed)!r}")
    if not 0.0 < window_fraction <= 1.0:
        raise ValueError(f"window_fraction must lie in (0, 1], got window_fraction={window_fraction!r}")
    if not isinstance(flow_points, (int, np.integer)) or flow_points < 2:
        raise ValueError(f"flow_points must be an integer ≥ 2, got flow_points={flow_points!r}")
    fixed = {k: float(fixed[k]) for k in ("learning_rate", "beta1", "beta2", "eps") if k != name}
    # every hyperparameter is a grid axis (the fixed ones with one value), so all are traced and
    # sweeps of the same size and length share one compiled program
    grid = {k: [v] for k, v in fixed.items()}
    grid[name] = list(values)
    result = ab.sweep(ab.optim.adam, bilinear_loss, jnp.asarray(BILINEAR_START), int(num_steps),
                      grid=grid, progress=progress)
    members = result.num_members
    hyper = {k: np.asarray(v) for k, v in result.hyperparams.items()}
    params = np.asarray(result.trajectory.params)
    loss = np.asarray(result.trajectory.loss)
    window_start = int(num_steps - max(1, round(window_fraction * num_steps)))
    s = one_norm_per_residual(params[:, window_start:])

    approach = np.array([approach_end(params[i], hyper["learning_rate"][i], hyper["beta1"][i],
                                      hyper["beta2"][i]) for i in range(members)])
    return SweepOutcome(
        name=name, values=np.asarray(result.hyperparams[name]), fixed=fixed, num_steps=int(num_steps),
        params=params, loss=loss, diverged_at=np.asarray(result.trajectory.diverged_at),
        learning_rate=hyper["learning_rate"], beta1=hyper["beta1"], beta2=hyper["beta2"],
        eps=hyper["eps"], window_start=window_start, s_mean=s.mean(axis=1),
        s_jitter=np.ptp(s, axis=1), window_max_loss=loss[:, window_start:].max(axis=1),
        approach_steps=approach, flow_points=int(flow_points),
    )


def add_flows(outcomes: Sequence[SweepOutcome]) -> None:
    """Solve the order-1 and order-0 flows for every member of ``outcomes`` on its approach
    (one vmapped solve over both orders and all members of all sweeps; order 0 is (2.2) with
    the bias's h set to 0, see :func:`flow_paths`) and store them with their sup-distance to
    the iterates in each outcome (``flow``, ``flow0``, ``flow_error``, ``flow0_error``, ...).
    """
    points = {o.flow_points for o in outcomes}
    if len(points) != 1:
        raise ValueError(f"outcomes must share flow_points, got {sorted(points)}")
    flow_points = points.pop()
    column = {k: np.concatenate([getattr(o, k) for o in outcomes])
              for k in ("learning_rate", "beta1", "beta2", "eps")}
    duration = np.concatenate([o.approach_steps * o.learning_rate for o in outcomes])
    total = len(duration)
    paths = np.asarray(flow_paths(
        np.concatenate([column["learning_rate"], np.zeros(total)]),
        *(np.tile(column[k], 2) for k in ("beta1", "beta2", "eps")),
        np.tile(duration, 2), num_points=flow_points))
    both = {1: paths[:total], 0: paths[total:]}
    start = 0
    for o in outcomes:
        members = len(o.values)
        o.flow, o.flow0 = (both[order][start:start + members] for order in (1, 0))
        flow_at_steps = [_at_steps(o.flow[i], o.approach_steps[i]) for i in range(members)]
        flow0_at_steps = [_at_steps(o.flow0[i], o.approach_steps[i]) for i in range(members)]
        iterates = [o.params[i, :o.approach_steps[i] + 1] for i in range(members)]
        far = [o.loss[i, :o.approach_steps[i] + 1] >= FAR_LOSS_FRACTION * o.loss[i, 0]
               for i in range(members)]
        o.flow_error = np.array([_sup_distance(f, it) for f, it in zip(flow_at_steps, iterates)])
        o.flow_error_far = np.array([_sup_distance(f[m], it[m])
                                     for f, it, m in zip(flow_at_steps, iterates, far)])
        o.flow0_error = np.array([_sup_distance(f, it) for f, it in zip(flow0_at_steps, iterates)])
        o.s_flow_end = one_norm_per_residual(o.flow[:, -1])
        o.s_iterate_at_flow_end = one_norm_per_residual(np.stack([it[-1] for it in iterates]))
        start += members


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


def monotone_decision(outcome: SweepOutcome, direction: int, loss_tolerance: float) -> tuple[bool, dict]:
    """Whether the end points move monotonically along the sweep, and the numbers.

    ``direction`` = −1: s̄ = mean |θ₁|+|θ₂| over the end window must strictly decrease along the
    sweep (towards smaller ‖∇E‖₁, the cross); +1: strictly increase. Held iff (i) every member
    converged (no divergence, loss ≤ ``loss_tolerance`` over the whole end window), (ii) s̄ is
    strictly monotone in ``direction``, and (iii) each consecutive step |Δs̄| exceeds the larger
    end-window peak-to-peak of s of the two members (the shift is resolved, not jitter).
    """
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 or +1, got direction={direction!r}")
    steps = np.diff(outcome.s_mean)
    jitter = np.maximum(outcome.s_jitter[:-1], outcome.s_jitter[1:])
    converged = (outcome.diverged_at < 0) & (outcome.window_max_loss <= loss_tolerance)
    monotone = bool(np.all(direction * steps > 0))
    resolved = bool(np.all(np.abs(steps) > jitter))
    held = bool(np.all(converged)) and monotone and resolved
    cross = np.asarray(bilinear_min_one_norm_point())
    numbers = {
        outcome.name: outcome.values, "s_mean": outcome.s_mean, "s_jitter": outcome.s_jitter,
        "s_steps": steps, "expected_sign_of_steps": direction, "monotone": monotone,
        "steps_exceed_jitter": resolved, "window_max_loss": outcome.window_max_loss,
        "loss_tolerance": loss_tolerance, "converged": converged, "diverged_at": outcome.diverged_at,
        "end_distance_to_cross": np.linalg.norm(outcome.params[:, -1] - cross, axis=-1),
        "s_at_cross": float(np.sum(cross)),
    }
    return held, numbers


def flow_note(outcome: SweepOutcome) -> str:
    """One report line: the flow-vs-iterates distance on the approach, order 1 against order 0."""
    pieces = [f"{outcome.label(i)}: {outcome.flow_error[i]:.1e} (order 0: {outcome.flow0_error[i]:.1e}; "
              f"while E ≥ {FAR_LOSS_FRACTION:g}·E₀: {outcome.flow_error_far[i]:.1e}; "
              f"t ≤ {outcome.approach_steps[i] * outcome.learning_rate[i]:.2f}; |θ₁|+|θ₂| there: flow "
              f"{outcome.s_flow_end[i]:.4f}, iterate {outcome.s_iterate_at_flow_end[i]:.4f})"
              for i in range(len(outcome.values))]
    return (f"Sweep over {outcome.symbol} ({outcome.setting_text()}): sup-distance ‖θ(t) − θ⁽ⁿ⁾‖∞ "
            "of the modified flow (2.2) to the iterates on the approach, " + "; ".join(pieces) + ".")


# --- figures --------------------------------------------------------------------------------


def _colors(count: int) -> list:
    cmap = colormaps["viridis"]
    return [cmap(0.9 * i / max(1, count - 1)) for i in range(count)]


def _landscape(ax, lims: tuple, points: int) -> None:
    (a0, a1), (b0, b1) = lims
    g1, g2 = np.linspace(a0, a1, points), np.linspace(b0, b1, points)
    values = np.asarray(bilinear_landscape(g1, g2))
    levels = np.logspace(-4, 2.5, 14)
    ax.contour(g1, g2, values, levels=levels, colors="0.6", linewidths=0.5)
    t1 = np.linspace(max(a0, 1e-3), a1, 400)
    t2 = BILINEAR_Y / BILINEAR_X / t1
    inside = (t2 >= b0) & (t2 <= b1)
    ax.plot(t1[inside], t2[inside], color="darkviolet", lw=1.5, label="minima θ₁θ₂ = 3/4")
    cross = np.asarray(bilinear_min_one_norm_point())
    if a0 <= cross[0] <= a1 and b0 <= cross[1] <= b1:
        ax.plot(*cross, "x", color="red", ms=10, mew=2, label="min ‖∇E‖₁ point (√¾, √¾)")


def _trajectories(ax, outcome: SweepOutcome, colors: list, zoomed: bool) -> None:
    """Iterates coloured along the sweep, the measured end point θ̄ (mean over the end window)
    as a dot, and the modified flow on the approach dashed."""
    for i, color in enumerate(colors):
        path = outcome.params[i]
        ax.plot(path[:, 0], path[:, 1], color=color, lw=0.8 if zoomed else 1.4,
                label=outcome.label(i))
        ax.plot(*path[outcome.window_start:].mean(axis=0), "o", color=color, ms=6, mec="k", mew=0.6)
    for i in range(len(colors)):
        ax.plot(outcome.flow[i, :, 0], outcome.flow[i, :, 1], "--", color="k", lw=0.8,
                label="modified flow (2.2) on the approach" if i == 0 else None)


def zoom_limits(outcome: SweepOutcome, margin: float = 0.35) -> tuple:
    """A box around the end points (and the ε-signGD reference), padded by ``margin`` × its size."""
    ends = np.stack([p[outcome.window_start:].mean(axis=0) for p in outcome.params])
    points = np.vstack([outcome.params[:, -1], ends, sign_flow_limit()[None]])
    low, high = points.min(axis=0), points.max(axis=0)
    size = max(float(np.max(high - low)), 2e-3)
    center = (low + high) / 2
    half = size * (0.5 + margin)
    return ((center[0] - half, center[0] + half), (center[1] - half, center[1] + half))


def plot_sweep(ax_full, ax_zoom, outcome: SweepOutcome, *, landscape_points: int, title: str) -> None:
    """Left: the landscape, θ₁θ₂ = 3/4, the cross and every trajectory with its flow overlay;
    right: a zoom on the end points, with the ε-signGD reference and an arrow to the cross."""
    colors = _colors(len(outcome.values))
    full = ((0.0, 3.2), (0.0, 3.8))
    _landscape(ax_full, full, landscape_points)
    _trajectories(ax_full, outcome, colors, zoomed=False)
    ax_full.plot(*BILINEAR_START, "s", color="k", ms=5, label="start (2.8, 3.5)")
    zoom = zoom_limits(outcome)
    (a0, a1), (b0, b1) = zoom
    ax_full.add_patch(Rectangle((a0, b0), a1 - a0, b1 - b0, fill=False, ec="k", lw=0.8))
    ax_full.set_xlim(*full[0])
    ax_full.set_ylim(*full[1])
    ax_full.set_aspect("equal")
    ax_full.set_title(title)
    ax_full.legend(loc="upper left", fontsize=7)

    _landscape(ax_zoom, zoom, landscape_points)
    _trajectories(ax_zoom, outcome, colors, zoomed=True)
    reference = sign_flow_limit()
    ax_zoom.plot(*reference, "D", color="0.4", ms=5, label="ε-signGD limit (θ₂ − θ₁ = 0.7)")
    direction = np.asarray(bilinear_min_one_norm_point()) - np.array([(a0 + a1) / 2, (b0 + b1) / 2])
    direction = direction / np.linalg.norm(direction)  # axes are square and equal-aspect
    tail = np.array([0.80, 0.42]) - 0.08 * direction
    ax_zoom.annotate("to the cross", xy=tuple(tail + 0.16 * direction), xytext=tuple(tail),
                     xycoords="axes fraction", textcoords="axes fraction",
                     arrowprops={"arrowstyle": "->", "color": "red"}, color="red", fontsize=8,
                     ha="center", va="bottom")
    ax_zoom.set_xlim(a0, a1)
    ax_zoom.set_ylim(b0, b1)
    ax_zoom.set_aspect("equal")
    ax_zoom.set_title(f"zoom near the end points; dots: mean position over the last "
                      f"{outcome.num_steps - outcome.window_start} steps")
    ax_zoom.legend(loc="upper right", fontsize=7)
    lines = [f"{outcome.label(i)}: s̄ = {outcome.s_mean[i]:.4f}" for i in range(len(outcome.values))]
    ax_zoom.text(0.02, 0.02, "s̄ = mean |θ₁|+|θ₂| (cross: 1.7321)\n" + "\n".join(lines),
                 transform=ax_zoom.transAxes, fontsize=7, va="bottom", ha="left",
                 bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9})
    for ax in (ax_full, ax_zoom):
        ax.set_xlabel("θ₁")
        ax.set_ylabel("θ₂")


def sweep_figure(outcomes: Sequence[SweepOutcome], titles: Sequence[str], *, landscape_points: int,
                 suptitle: str):
    """One row per sweep: full landscape and zoom."""
    figure, axes = panels(len(outcomes), 2, width=5.0, height=5.2)
    for row, (outcome, title) in enumerate(zip(outcomes, titles)):
        plot_sweep(axes[row, 0], axes[row, 1], outcome, landscape_points=landscape_points, title=title)
    figure.suptitle(suptitle)
    return figure
