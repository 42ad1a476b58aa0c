"""CKS Example 2.3: Adam with ε ≫ ∇E² is heavy ball, and its flow is Ghosh et al.'s.

With √ε ≫ |∇E|, bias-corrected Adam moves by −h·m̂/√ε: heavy ball with step
η = h(1−β)/√ε and momentum β (after the first ~1/(1−β) steps, see below). Heavy ball's
modified flow in its own time s = nη (DESIGN §3.3),

    dθ/ds = −(1/(1−β))∇E − η(1+β)/(4(1−β)³)·∇‖∇E‖²,

becomes, in Adam's time t = nh = s·h/η (multiply by η/h = (1−β)/√ε),

    dθ/dt = −(1/√ε)(∇E + h/(2√ε)·(1+β)/(1−β)·H∇E),

which is (2.7) (:func:`adabias.flows.adam_large_eps_limit`). β = 0 gives GD with step
h/√ε and Barrett–Dherin's flow θ̇ = −∇(E + (h/4)‖∇E‖²).

What is compared (global error sup_{n ≤ N} ‖θ(·) − θ⁽ⁿ⁾‖∞, flows solved in the time of the
iterates they are compared with):

- bias-corrected Adam (β = 0.9) against (2.7) at t = nh: expected O(h²). Bias correction
  makes m̂⁽¹⁾ = ∇E(θ⁽⁰⁾), so Adam moves at the flow's speed from the first step;
- Adam with β = 0 (ε ≫ ∇E²) against Barrett–Dherin's flow with step h/√ε at s = nh/√ε,
  and plain GD against the same flow: expected O(h²);
- heavy ball (``optax.sgd`` with momentum, zero initial momentum) against its modified
  flow at s = nη: not O(h²). Its first steps are short by the factor 1 − βⁿ⁺¹, an
  offset η·β/(1−β)²·∇E(θ⁽⁰⁾) that persists (error O(h)); reported as data;
- (2.7) at t = nh against heavy ball's flow at s = nη: the time change, equal to solver
  tolerance.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import adabias as ab
from adabias import flows
from adabias._validation import require_x64
from adabias.experiments.base import ClaimSpec, Context, Decision, Experiment, Tiers, Verdict
from adabias.plot import panels
from adabias.plot.orders import OrderCurve, error_against_h, legend_below, log_h_axis


@dataclasses.dataclass(frozen=True)
class Example23Settings:
    start: tuple[float, float] = (0.9, 0.6)   # θ⁽⁰⁾ on the bilinear model
    beta: float = 0.9                         # β (Adam's and heavy ball's momentum)
    rho: float = 0.999                        # ρ (Adam)
    eps: float = 1e12                         # ε ≫ ∇E²: the large-ε regime
    horizon: float = 1.0                      # in units of t/√ε (the leading-order flow θ' = −∇E)
    lr_over_root_eps: tuple[float, ...] = tuple(2.5e-3 * 2.0**-k for k in range(5))   # h/√ε
    asymptotic_points: int = flows.ASYMPTOTIC_POINTS   # the order is fitted on the smallest h
    slope_tolerance: float = flows.SLOPE_TOLERANCE     # |slope − 2| below this: held
    rescaling_tolerance: float = 1e-8         # (2.7) against heavy ball's flow: solver tolerance


FULL = dataclasses.replace(Example23Settings(),
                           lr_over_root_eps=tuple(2.5e-3 * 2.0**-k for k in range(8)))
TIERS = Tiers(quick=Example23Settings(), medium=FULL, full=FULL)


class Example23Record(NamedTuple):
    lr_over_root_eps: np.ndarray                   # ν = h/√ε: GD's step
    adam_step: np.ndarray                          # h
    heavy_ball_step: np.ndarray                    # η = h(1−β)/√ε
    num_steps: np.ndarray                          # N = horizon·√ε/h
    adam_vs_large_eps_flow: np.ndarray             # global errors …
    adam_beta0_vs_gd_flow: np.ndarray
    gd_vs_gd_flow: np.ndarray
    heavy_ball_vs_heavy_ball_flow: np.ndarray
    large_eps_flow_vs_heavy_ball_flow: np.ndarray  # the time change (flow against flow)
    heavy_ball_predicted_offset: np.ndarray        # ηβ/(1−β)²‖∇E(θ⁰)‖∞
    gradient_squared_over_eps_at_start: np.ndarray


_LARGE_EPS, _HEAVY_BALL, _GD = 0, 1, 2


def heavy_ball_step(learning_rate: float, beta: float, eps: float) -> float:
    """Example 2.3: the heavy-ball step η = h(1−β)/√ε that Adam with large ε takes."""
    return learning_rate * (1.0 - beta) / math.sqrt(eps)


def measure(settings: Example23Settings, context: Context) -> Example23Record:
    require_x64("cks.example23")
    loss_fn = ab.problems.bilinear_loss
    params0 = jnp.asarray(settings.start)
    beta, rho, eps = settings.beta, settings.rho, settings.eps
    nu = [float(v) for v in settings.lr_over_root_eps]          # h/√ε: GD's step
    adam_steps = [v * math.sqrt(eps) for v in nu]                # h
    hb_steps = [heavy_ball_step(h, beta, eps) for h in adam_steps]   # η = h(1−β)/√ε
    counts = flows.step_counts(nu, settings.horizon)              # N = τ√ε/h
    k = len(nu)
    adam, adam0 = flows.iterates_per_step_size(
        lambda learning_rate, beta1: ab.optim.adam(learning_rate, beta1, rho, eps),
        loss_fn, params0, adam_steps, counts, grid={"beta1": [beta, 0.0]})
    (heavy_ball,) = flows.iterates_per_step_size(
        lambda learning_rate: ab.optim.heavy_ball(learning_rate, beta),
        loss_fn, params0, hb_steps, counts)
    (gd,) = flows.iterates_per_step_size(lambda learning_rate: ab.optim.gd(learning_rate),
                                         loss_fn, params0, nu, counts)

    def make_field(h, which, beta):
        return flows.switch([flows.adam_large_eps_limit(loss_fn, h, beta, eps),
                             flows.heavy_ball_modified(loss_fn, h, beta),
                             flows.gd_modified(loss_fn, h)], which)

    solutions = flows.solve_steps(
        make_field, params0, adam_steps + hb_steps + nu, counts * 3,
        hyper={"which": [_LARGE_EPS] * k + [_HEAVY_BALL] * k + [_GD] * k, "beta": [beta] * (3 * k)},
        rtol=1e-13, atol=1e-15)  # GD's errors reach ~1e-10 at the smallest --full steps
    large_eps, hb_flow, gd_flow = solutions[:k], solutions[k:2 * k], solutions[2 * k:]
    gradient = np.abs(np.asarray(jax.grad(loss_fn)(params0)))
    return Example23Record(
        lr_over_root_eps=np.asarray(nu), adam_step=np.asarray(adam_steps),
        heavy_ball_step=np.asarray(hb_steps), num_steps=np.asarray(counts),
        adam_vs_large_eps_flow=flows.global_errors(large_eps, adam),
        adam_beta0_vs_gd_flow=flows.global_errors(gd_flow, adam0),
        gd_vs_gd_flow=flows.global_errors(gd_flow, gd),
        heavy_ball_vs_heavy_ball_flow=flows.global_errors(hb_flow, heavy_ball),
        large_eps_flow_vs_heavy_ball_flow=flows.global_errors(large_eps, hb_flow),
        # leading offset of zero-initial-momentum heavy ball, in θ: η β/(1−β)² ‖∇E(θ⁰)‖∞
        heavy_ball_predicted_offset=np.asarray(hb_steps) * beta / (1 - beta) ** 2 * gradient.max(),
        gradient_squared_over_eps_at_start=np.full(k, gradient.max() ** 2 / eps),
    )


def decide(settings: Example23Settings, record: Example23Record) -> Decision:
    nu = record.lr_over_root_eps.tolist()
    points, tolerance = settings.asymptotic_points, settings.slope_tolerance
    order_two = lambda errors: flows.decide_order(nu, errors, 2.0, points=points,
                                                  tolerance=tolerance)
    rescaling = float(np.max(record.large_eps_flow_vs_heavy_ball_flow))
    rescaling_ok = rescaling < settings.rescaling_tolerance
    verdicts = [Verdict("cks.example23.rescaling", rescaling_ok,
                        {"max_difference": rescaling, "tolerance": settings.rescaling_tolerance,
                         "per_step_size": record.large_eps_flow_vs_heavy_ball_flow},
                        "" if rescaling_ok else
                        f"the two flows differ by {rescaling:.2e}, not below "
                        f"{settings.rescaling_tolerance:g}")]
    held, numbers = order_two(record.adam_vs_large_eps_flow)
    verdicts.append(Verdict("cks.example23.adam", held,
                            {**numbers, "adam_step_sizes": record.adam_step},
                            "" if held else flows.order_reason(numbers, "h/√ε")))
    held_adam0, adam0 = order_two(record.adam_beta0_vs_gd_flow)
    held_gd, gd = order_two(record.gd_vs_gd_flow)
    reasons = [f"{name}: {flows.order_reason(numbers, 'h/√ε')}"
               for name, ok, numbers in (("Adam β = 0", held_adam0, adam0), ("GD", held_gd, gd))
               if not ok]
    verdicts.append(Verdict("cks.example23.gd", held_adam0 and held_gd,
                            {"adam_beta0": adam0, "gd": gd},
                            "; ".join(reasons)))

    hb_slope = flows.asymptotic_fit(nu, record.heavy_ball_vs_heavy_ball_flow, points).order
    ratio = record.heavy_ball_vs_heavy_ball_flow[-1] / record.heavy_ball_predicted_offset[-1]
    notes = [
        f"ε = {settings.eps:g} so that the large-ε form is exact far below the errors measured: "
        f"|∇E(θ⁰)|²/ε = {record.gradient_squared_over_eps_at_start[0]:.1e}. Adam's step is "
        f"h = (h/√ε)·√ε = {', '.join(f'{h:g}' for h in record.adam_step)}; T = horizon·√ε.",
        f"Heavy ball with zero initial momentum against its modified flow: slope {hb_slope:.3f} "
        f"(O(h), no O(h²) claim): at the smallest step its error is {ratio:.2f}× the predicted "
        "offset ηβ/(1−β)²‖∇E(θ⁰)‖∞ of its short first steps. Bias-corrected Adam has no such "
        "offset (m̂⁽¹⁾ = ∇E(θ⁽⁰⁾)); Adam without bias correction is heavy ball and has it.",
        f"Orders: slopes on the {points} smallest h/√ε, claim when |slope − 2| < {tolerance}.",
    ]
    return Decision(verdicts, notes)


def plot(settings: Example23Settings, record: Example23Record) -> dict:
    nu = record.lr_over_root_eps.tolist()
    beta = settings.beta
    curve = lambda errors, style: OrderCurve(
        errors, flows.asymptotic_fit(nu, errors, settings.asymptotic_points).order, style)
    figure, axes = panels(1, 2, width=4.8, height=4.6)
    error_against_h(axes[0, 0], nu, {
        f"Adam β={beta} vs (2.7)": curve(record.adam_vs_large_eps_flow,
                                         dict(marker="o", color="C0")),
        "Adam β=0 vs GD flow": curve(record.adam_beta0_vs_gd_flow, dict(marker="s", color="C2")),
        "GD vs GD flow": curve(record.gd_vs_gd_flow, dict(marker="x", color="C3", ls="--")),
        f"heavy ball β={beta} (v₀=0) vs its flow": curve(record.heavy_ball_vs_heavy_ball_flow,
                                                        dict(marker="^", color="C1")),
    }, xlabel="h/√ε (GD's step; heavy ball's is (1−β)h/√ε)")
    axes[0, 0].set_title(f"bilinear, θ⁽⁰⁾ = {tuple(settings.start)}, ε = {settings.eps:g}, "
                         f"ρ = {settings.rho}, horizon t/√ε = {settings.horizon}")
    ax = axes[0, 1]
    ax.loglog(nu, record.large_eps_flow_vs_heavy_ball_flow, "o-", color="C0",
              label="(2.7) at t = nh vs heavy-ball flow at s = nη")
    ax.loglog(nu, record.heavy_ball_vs_heavy_ball_flow, "^-", color="C1",
              label="heavy ball vs its flow (for scale)")
    ax.loglog(nu, record.heavy_ball_predicted_offset, ":", color="C1",
              label="predicted offset ηβ/(1−β)²‖∇E(θ⁰)‖∞")
    ax.axhline(settings.rescaling_tolerance, color="0.5", ls="--", label="tolerance 1e-8")
    log_h_axis(ax, nu)
    ax.set_xlabel("h/√ε")
    ax.set_ylabel(r"$\mathrm{sup}_n$ of the max-norm difference")
    ax.set_title("time change t = s·√ε/(1−β): the two flows coincide")
    legend_below(ax)
    figure.suptitle("CKS Example 2.3: large-ε Adam, heavy ball and GD against their modified flows")
    return {"example23": figure}


def tables(settings: Example23Settings, record: Example23Record) -> dict:
    return {"errors": record._asdict()}


EXPERIMENT = Experiment(
    id="cks.example23", paper="CKS",
    title="Example 2.3: Adam with large ε, heavy ball and GD against their modified flows",
    tiers=TIERS,
    claims={
        "cks.example23.rescaling": ClaimSpec(
            "Heavy ball's modified flow with step h(1−β)/√ε and momentum "
            "β, solved in its own time s = nh(1−β)/√ε, equals (2.7) in Adam's time t = nh "
            "(sup over n of the difference below 1e-8, solver tolerance).",
            "theory", "max over the step sizes of sup over n of ‖(2.7)(nh) − heavy-ball flow"
            "(nη)‖∞ < 1e-8 (solver tolerance 1e-13 relative); deterministic"),
        "cks.example23.adam": ClaimSpec(
            "Bias-corrected Adam with ε ≫ ∇E² tracks (2.7), heavy ball's "
            "modified flow in Adam's time, with global error O(h²) (fitted slope within 0.3 of 2 "
            "on the smallest step sizes).",
            "theory", "global error sup over n of ‖θ(nh) − θ⁽ⁿ⁾‖∞ on the bilinear model, "
            f"ε = 1e12; least-squares slope of log error against log h on the "
            f"{flows.ASYMPTOTIC_POINTS} smallest h, |slope − 2| < {flows.SLOPE_TOLERANCE}; "
            "deterministic, one run per h"),
        "cks.example23.gd": ClaimSpec(
            "β = 0: Adam with ε ≫ ∇E² (GD with step h/√ε) and plain GD are "
            "tracked by Barrett–Dherin's flow θ̇ = −∇(E + (h/4)‖∇E‖²) with global error O(h²) "
            "(both fitted slopes within 0.3 of 2).",
            "theory", "for Adam with β = 0 and for GD: least-squares slope of log global error "
            f"against log(h/√ε) on the {flows.ASYMPTOTIC_POINTS} smallest steps, "
            f"|slope − 2| < {flows.SLOPE_TOLERANCE} for both; deterministic"),
    },
    measure=measure, decide=decide, plot=plot, tables=tables)
