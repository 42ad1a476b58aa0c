"""Beyond the papers: where the modified flows stop tracking — the edge of stability.

Adam divides by P = √(v̂ + ε); frozen P, its linearization near a minimum is heavy ball on
P^{−1/2}HP^{−1/2} with momentum β₁, stable while the stability ratio

    r = λ_max(P^{−1/2}HP^{−1/2}) · (1−β₁)h / (2(1+β₁))

is below 1 (:func:`adabias.measures.stability_ratio`; Cohen et al.). Long before that, at

    r_c = (1−√β₁)² / (2(1+β₁))                  (0.029 for β₁ = 0.5, 0.0031 for β₁ = 0.8),

the heavy-ball iteration's roots turn complex: the iterates oscillate, and no first-order
ODE in θ can follow them. The expansion behind every modified flow (CKS (2.2)–(2.3), DESIGN
§3.6) is one in h·λ_max(P^{−1}H)/(1−β₁) ∝ r/r_c.

Setting: a teacher–student tanh net (:mod:`adabias.problems.tanh_net`, 3 units, 8 points; the
teacher is ``init_tanh_net`` with key 0, the student starts ``offset`` away from it,
an exact minimum, so |∇E|² ≪ ε and P ≈ √ε), bias-corrected Adam (CKS (2.1)) for step sizes
whose ratio at the start runs from far below r_c to above 1 (``design_ratios``), over a
fixed horizon T (``steps_at_largest`` steps of the largest h). Measured: the global error of
the memory-corrected flow (:func:`adabias.flows.memory_corrected_ema`, equal to CKS (2.2)–(2.3)
here) against the iterates, and the largest stability ratio along each run
(:func:`adabias.measures.preconditioned_sharpness` with the iterates' own v̂).

Decision rules, fixed here: (1) the local slope between neighbouring h is within 0.3 of 2
for every pair whose larger ratio is at most r_c/2; (2) the same for every pair whose ratios
are below 1 (the claim that the flow tracks up to the edge of stability); (3) the error at
the smallest h whose ratio reaches 1 is at least ``jump_factor`` times every error below it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import adabias as ab
from adabias import flows
from adabias._validation import require_x64
from adabias.experiments.base import ClaimSpec, Context, Decision, Experiment, Tiers, Verdict
from adabias.plot import panels
from adabias.plot.memory import error_and_stability
from adabias.plot.orders import legend_below


@dataclasses.dataclass(frozen=True)
class EdgeSettings:
    beta1: float = 0.5              # β₁: r_c = 0.029, 1.5 decades below the edge
    beta2: float = 0.9              # β₂
    eps: float = 1e-6               # ε inside the root; |∇E|² ≈ 1.6e-9 ≪ ε near the teacher
    offset: float = 1e-5            # ‖θ⁽⁰⁾ − θ*‖₂, along a fixed random direction
    design_ratios: tuple[float, ...] = tuple(0.003 * 4.0**k for k in range(6))   # r at the start
    steps_at_largest: int = 8       # T = this many steps of the largest h
    sharpness_points: int = 8       # points per run where λ_max(P^{−1/2}HP^{−1/2}) is computed
    slope_tolerance: float = flows.SLOPE_TOLERANCE
    jump_factor: float = 10.0


FULL = dataclasses.replace(EdgeSettings(), design_ratios=tuple(0.0009 * 2.0**k for k in range(13)),
                           steps_at_largest=16, sharpness_points=16)
TIERS = Tiers(quick=EdgeSettings(), medium=FULL, full=FULL)


class EdgeRecord(NamedTuple):
    step_size: np.ndarray          # h per run
    num_steps: np.ndarray          # N = T/h
    error: np.ndarray              # sup_n ‖θ(nh) − θ⁽ⁿ⁾‖∞ of the order-1 flow
    ratio: np.ndarray              # the largest stability ratio along each run
    ratio_path: np.ndarray         # (runs, sharpness_points): the ratio along each run
    top_eigenvalue: float          # λ_max(∇²E(θ*)) at the teacher


# --- the teacher–student net -----------------------------------------------------------------


def teacher() -> dict:
    """θ*: 3 tanh units (10 params), :func:`adabias.problems.init_tanh_net` with key 0."""
    return ab.problems.init_tanh_net(jax.random.key(0))


def student_loss(params: dict) -> jax.Array:
    """E(θ) = ½ mean (f(x; θ) − f(x; θ*))² on 8 points of [−1, 1]: E(θ*) = 0, a minimum."""
    return ab.problems.tanh_net_loss(params, ab.problems.tanh_net_teacher_data(teacher(), 8))


def onset_of_oscillation(beta1: float) -> float:
    """r_c = (1−√β₁)²/(2(1+β₁)): the stability ratio where heavy ball's roots turn complex."""
    return (1.0 - math.sqrt(beta1)) ** 2 / (2.0 * (1.0 + beta1))


# --- measure, decide, plot -------------------------------------------------------------------


def _ratio_paths(settings: EdgeSettings, step_sizes, iterates) -> np.ndarray:
    """The stability ratio at ``sharpness_points`` steps of every run, v̂ from the run's own
    gradients (bias-corrected EMA with β₂), all runs in one compiled computation."""
    longest = max(len(jax.tree.leaves(it)[0]) for it in iterates)
    flat = jax.vmap(lambda tree: ravel_pytree(tree)[0])
    unravel = ravel_pytree(teacher())[1]
    padded = jnp.stack([jnp.pad(flat(it), ((0, longest - len(flat(it))), (0, 0)), mode="edge")
                        for it in iterates])
    picks = jnp.stack([jnp.linspace(0, len(flat(it)) - 2, settings.sharpness_points)
                       .round().astype(int) for it in iterates])
    b2, eps = settings.beta2, settings.eps

    @jax.jit
    def paths(points, picks, h):
        grads = jax.vmap(jax.grad(lambda x: student_loss(unravel(x))))(points)
        v = jax.lax.scan(lambda v, g: (b2 * v + (1 - b2) * g * g,) * 2,
                         jnp.zeros_like(grads[0]), grads)[1]
        v_hat = v / (1.0 - b2 ** jnp.arange(1, len(v) + 1, dtype=v.dtype))[:, None]
        sharp = jax.vmap(lambda x, vh: ab.measures.preconditioned_sharpness(
            student_loss, unravel(x), unravel(vh), eps))(points[picks], v_hat[picks])
        return ab.measures.stability_ratio(sharp, h, settings.beta1)

    return np.asarray(jax.vmap(paths)(padded, picks, jnp.asarray(step_sizes)))


def measure(settings: EdgeSettings, context: Context) -> EdgeRecord:
    require_x64("beyond.edge_of_stability")
    star = teacher()
    x, unravel = ravel_pytree(star)
    direction = jax.random.normal(jax.random.key(1), x.shape)
    params0 = unravel(x + settings.offset * direction / jnp.linalg.norm(direction))
    top = float(ab.measures.top_eigenvalue(student_loss, star))
    threshold_times_h = 2.0 * (1.0 + settings.beta1) / (1.0 - settings.beta1)
    # P ≈ √ε near θ*: ratio r at h is h·(λ_max/√ε)/threshold_times_h
    step_sizes = [r * threshold_times_h * math.sqrt(settings.eps) / top
                  for r in settings.design_ratios]
    horizon = settings.steps_at_largest * step_sizes[-1]
    counts = [int(round(horizon / h)) for h in step_sizes]
    b1, b2, eps = settings.beta1, settings.beta2, settings.eps
    (iterates,) = flows.iterates_per_step_size(
        lambda learning_rate: ab.optim.adam(learning_rate, b1, b2, eps), student_loss, params0,
        step_sizes, counts)
    form = flows.adam_ema_form(b1, b2, eps)
    solutions = flows.solve_steps(lambda h: flows.memory_corrected_ema(form, student_loss, h),
                                  params0, step_sizes, counts, sequential=True)
    ratios = _ratio_paths(settings, step_sizes, iterates)
    return EdgeRecord(np.asarray(step_sizes), np.asarray(counts),
                      flows.global_errors(solutions, iterates), ratios.max(axis=1), ratios, top)


def _pairs_within(record: EdgeRecord, limit: float, tolerance: float) -> tuple[bool, dict]:
    slopes = flows.fit_order(record.step_size, record.error).local
    chosen = [(float(record.ratio[i + 1]), s) for i, s in enumerate(slopes)
              if max(record.ratio[i], record.ratio[i + 1]) < limit]
    held = bool(chosen) and all(abs(s - 2.0) < tolerance for _, s in chosen)
    farthest = max((s for _, s in chosen), key=lambda s: abs(s - 2.0), default=float("nan"))
    return held, {"slope_farthest_from_2": farthest, "pairs": len(chosen),
                  "ratio_limit": limit, "tolerance": tolerance,
                  "pairs_larger_ratio": [r for r, _ in chosen],
                  "local_slopes": [s for _, s in chosen]}


def decide(settings: EdgeSettings, record: EdgeRecord) -> Decision:
    onset = onset_of_oscillation(settings.beta1)
    tolerance = settings.slope_tolerance
    data = {"step_sizes": list(record.step_size), "errors": list(record.error),
            "ratios": list(record.ratio),
            "local_slopes_all": list(flows.fit_order(record.step_size, record.error).local)}
    held1, numbers1 = _pairs_within(record, onset / 2.0, tolerance)
    held2, numbers2 = _pairs_within(record, 1.0, tolerance)
    relative = lambda r: r * ((1 + settings.beta1) / (1 - settings.beta1)) ** 2
    outside2 = [s for s in numbers2["local_slopes"] if abs(s - 2.0) >= tolerance]
    note2 = "" if held2 else "no pair of neighbouring h has both ratios below 1" if not \
        numbers2["local_slopes"] else (
        f"local slopes {', '.join(f'{s:.2f}' for s in outside2)} (outside 2 ± {tolerance}) "
        f"among the pairs below the edge "
        f"({', '.join(f'{s:.2f}' for s in numbers2['local_slopes'])}): the "
        f"flow stops tracking near the onset of oscillation r_c = (1−√β₁)²/(2(1+β₁)) = "
        f"{onset:.3g}, not at r = 1. Between the two the iterates are stable but oscillate "
        "(heavy ball's roots are complex), which no first-order flow in θ follows; the "
        "first-order correction h·λ(β₁/(1−β₁) + ½) relative to the update, r·((1+β₁)/(1−β₁))², "
        f"is {relative(onset):.2g} at r_c and {relative(1.0):.2g} at the edge.")
    below = record.ratio < 1.0
    edge = np.flatnonzero(~below)
    if edge.size and below.any():
        first = int(edge[0])
        factor = float(record.error[first] / np.max(record.error[:first][below[:first]]))
        edge_ratio = float(record.ratio[first])
        held3, note3 = factor >= settings.jump_factor, ""
        if not held3:
            note3 = (f"the error grew only {factor:.3g}× past the edge (rule: "
                     f"≥ {settings.jump_factor:g}×)")
    else:
        factor, edge_ratio, held3 = float("nan"), float("nan"), False
        note3 = "no run both below and at or beyond the edge: the design ratios missed it"
    verdicts = [
        Verdict("beyond.edge_of_stability.tracking", held1, {**numbers1, **data},
                "" if held1 else "no pair of neighbouring h has both ratios below r_c/2 = "
                f"{onset / 2:.3g}" if not numbers1["local_slopes"] else
                f"local slopes below r_c/2 outside 2 ± {tolerance}: "
                f"{', '.join(f'{s:.2f}' for s in numbers1['local_slopes'])}"),
        Verdict("beyond.edge_of_stability.below_edge", held2, {**numbers2, **data}, note2),
        Verdict("beyond.edge_of_stability.jump", held3,
                {"jump_factor": factor, "rule": settings.jump_factor,
                 "ratio_past_edge": edge_ratio, **data}, note3),
    ]
    notes = [f"Teacher–student tanh net, ‖θ⁽⁰⁾ − θ*‖ = {settings.offset:g}, λ_max(H(θ*)) = "
             f"{record.top_eigenvalue:.4g}, ε = {settings.eps:g} (P ≈ √ε at the start), "
             f"β₁ = {settings.beta1}, β₂ = {settings.beta2}, T = {settings.steps_at_largest} "
             f"steps of the largest h; r_c = {onset:.3g}. Past the edge the iterates grow until "
             "v̂ rises and P with it: the ratio along that run falls back below 1 "
             "(self-stabilization)."]
    return Decision(verdicts, notes)


def plot(settings: EdgeSettings, record: EdgeRecord) -> dict:
    figure, axes = panels(1, 2, width=5.0, height=4.4)
    slopes = flows.fit_order(record.step_size, record.error).local
    error_and_stability(axes[0, 0], record.step_size, record.error, record.ratio,
                                slopes=slopes, error_label="order-1 flow vs Adam",
                                marks=[(onset_of_oscillation(settings.beta1),
                                        r"onset of oscillation $r_c = (1-\sqrt{\beta_1})^2"
                                        r"/(2(1+\beta_1))$")])
    axes[0, 0].set_title(f"Global error and stability ratio (β₁ = {settings.beta1})", fontsize=9)
    ax = axes[0, 1]
    for h, path, n in zip(record.step_size, record.ratio_path, record.num_steps):
        ax.semilogy(np.linspace(0, 1, len(path)), path, marker=".", label=f"h = {h:.2g}")
    ax.axhline(1.0, color="C3", ls=":", lw=1)
    ax.set_xlabel("t / T")
    ax.set_ylabel("stability ratio along the run")
    ax.set_title("The ratio along each run", fontsize=9)
    legend_below(ax, ncol=3)
    figure.suptitle(f"Teacher–student tanh net (10 params, 8 points), Adam β₁ = {settings.beta1},"
                    f" β₂ = {settings.beta2}, ε = {settings.eps:g}, T = "
                    f"{settings.steps_at_largest} steps of the largest h, float64\nwhere the "
                    "modified flow stops tracking", fontsize=10)
    return {"edge": figure}


def tables(settings: EdgeSettings, record: EdgeRecord) -> dict:
    return {"errors": {"step_size": record.step_size, "num_steps": record.num_steps,
                       "error": record.error, "max_stability_ratio": record.ratio}}


EXPERIMENT = Experiment(
    id="beyond.edge_of_stability", paper="beyond",
    title="Where the modified flows stop tracking: stability ratio and the edge of stability",
    tiers=TIERS,
    claims={
        "beyond.edge_of_stability.tracking": ClaimSpec(
            "Far below the onset of oscillation (stability ratio below r_c/2, "
            "r_c = (1−√β₁)²/(2(1+β₁))) the memory-corrected flow tracks Adam to O(h²).",
            "theory", "error e(h) = sup over steps n ≤ T/h of ‖θ(nh) − θ⁽ⁿ⁾‖∞ (T = 8 steps of "
            "the largest h at quick, 16 at full); ratio of a run = the largest stability ratio "
            "along it; held when there is at least one pair of neighbouring step sizes whose "
            "two ratios are below r_c/2 and every such pair's local slope "
            "log(e(h₂)/e(h₁))/log(h₂/h₁) lies strictly within 2 ± 0.3; deterministic"),
        "beyond.edge_of_stability.below_edge": ClaimSpec(
            "The flow tracks Adam to O(h²) as long as the stability ratio "
            "λ_max(P^{−1/2}HP^{−1/2})/(2(1+β₁)/((1−β₁)h)) stays below 1 (the edge of "
            "stability).",
            "theory", "the same errors, ratios and local slopes; held when there is at least "
            "one pair of neighbouring step sizes whose two ratios are below 1 and every such "
            "pair's local slope lies strictly within 2 ± 0.3; deterministic"),
        "beyond.edge_of_stability.jump": ClaimSpec(
            "Once training reaches the edge of stability (ratio ≥ 1) the flow's error jumps.",
            "theory", "held when e at the smallest step size whose ratio is ≥ 1 is at least "
            "10 × the largest e among the smaller step sizes with ratio below 1; "
            "deterministic"),
    },
    measure=measure, decide=decide, plot=plot, tables=tables)
