"""Continuous-time approximations (layer 4): modified flows and slow ODEs as vector
fields, solved with diffrax, and tools comparing a flow with a trajectory."""

from adabias.flows.fields import (adam_bias, adam_bias_coefficient, adam_full_batch,
                                  adam_large_eps_limit, adam_small_eps_limit, gd_modified,
                                  heavy_ball_modified)
from adabias.flows.label_noise import (SlowAGMState, hessian_trace_semigradient,
                                       label_noise_alpha, label_noise_slow_agm,
                                       label_noise_slow_agm_quasi_static, label_noise_slow_sgd,
                                       project_to_manifold, quasi_static_v, tangent_projector)
from adabias.flows.minibatch import adam_minibatch, adam_minibatch_zeroth, jump_times
from adabias.flows.solve import OrderFit, fit_order, global_error, solve, solve_steps

__all__ = [
    "gd_modified", "heavy_ball_modified", "adam_full_batch", "adam_small_eps_limit",
    "adam_large_eps_limit", "adam_bias", "adam_bias_coefficient",
    "adam_minibatch", "adam_minibatch_zeroth", "jump_times",
    "label_noise_slow_sgd", "label_noise_slow_agm", "label_noise_slow_agm_quasi_static",
    "SlowAGMState", "label_noise_alpha", "project_to_manifold", "quasi_static_v",
    "hessian_trace_semigradient", "tangent_projector",
    "solve", "solve_steps", "global_error", "fit_order", "OrderFit",
]
