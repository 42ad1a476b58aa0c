"""Continuous-time approximations (layer 6): modified flows and slow ODEs as vector fields
``f(t, y, args) -> dy/dt`` (diffrax's signature), solved with diffrax, and tools comparing a
flow with a trajectory (global error, convergence order).

Everything here needs float64 and refuses float32 input (keyword-only ``allow_float32=True``
opts out); solving a modified flow outside its asymptotic regime warns
(:class:`AsymptoticRegimeWarning`)."""

from adabias.flows.fields import (adam_bias, adam_bias_coefficient, adam_full_batch,
                                  adam_large_eps_limit, adam_small_eps_limit, gd_modified,
                                  heavy_ball_modified)
from adabias.flows.label_noise import (SlowAGMState, hessian_trace_semigradient,
                                       label_noise_alpha, label_noise_slow_agm,
                                       label_noise_slow_agm_quasi_static, label_noise_slow_sgd,
                                       project_to_manifold, quasi_static_v, tangent_projector)
from adabias.flows.memory import (MemoryProbe, memory_corrected, memory_corrected_with_window,
                                  memory_window, probe_memory)
from adabias.flows.memory_ema import (EMAForm, adam_ema_form, agm_ema_form, heavy_ball_ema_form,
                                      memory_corrected_ema)
from adabias.flows.minibatch import adam_minibatch
from adabias.flows.order import (ASYMPTOTIC_POINTS, SLOPE_TOLERANCE, OrderFit, asymptotic_fit,
                                 decide_order, fit_order, global_error, global_errors,
                                 iterates_per_step_size, order_reason, step_counts)
from adabias.flows.regime import (REGIME_THRESHOLD, AsymptoticRegimeWarning, first_order_ratio,
                                  warn_outside_regime)
from adabias.flows.solve import solve, solve_steps
from adabias.flows.vector_field import (Field, ModifiedField, PiecewiseField, Terms, step_index,
                                        switch)

__all__ = [
    "Field", "PiecewiseField", "ModifiedField", "Terms", "step_index",
    "gd_modified", "heavy_ball_modified", "adam_full_batch", "adam_small_eps_limit",
    "adam_large_eps_limit", "adam_bias", "adam_bias_coefficient", "adam_minibatch",
    "memory_corrected", "memory_corrected_with_window", "memory_window", "probe_memory",
    "MemoryProbe", "memory_corrected_ema", "EMAForm", "adam_ema_form",
    "agm_ema_form", "heavy_ball_ema_form",
    "label_noise_slow_sgd", "label_noise_slow_agm", "label_noise_slow_agm_quasi_static",
    "SlowAGMState", "label_noise_alpha", "project_to_manifold", "quasi_static_v",
    "hessian_trace_semigradient", "tangent_projector",
    "solve", "solve_steps", "switch",
    "AsymptoticRegimeWarning", "REGIME_THRESHOLD", "first_order_ratio", "warn_outside_regime",
    "global_error", "global_errors", "fit_order", "OrderFit", "asymptotic_fit", "decide_order",
    "order_reason", "ASYMPTOTIC_POINTS", "SLOPE_TOLERANCE", "step_counts", "iterates_per_step_size",
]
