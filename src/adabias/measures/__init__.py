"""Measures of a loss along training (layer 3): gradient norms and curvature, HVP-based.

CKS's bias terms penalize the perturbed one-norm ‖∇E‖₁,ε, ‖∇E‖₁ or ‖∇E‖₂²; LWL's sharpness
measures are tr(H) (SGD), tr(Diag(H)^{1/2}) (Adam) and tr(Diag(H)^{1−λ}) (AdamE-λ).
"""

from adabias.measures.curvature import diag_power_trace, hessian_diag, hessian_trace, top_eigenvalue
from adabias.measures.hvp import flat_hvp, hvp, hvp_batched
from adabias.measures.norms import one_norm, perturbed_one_norm, squared_two_norm
from adabias.measures.preconditioned import (adaptive_preconditioner, preconditioned_sharpness,
                                             stability_ratio, stability_threshold)

__all__ = [
    "perturbed_one_norm", "one_norm", "squared_two_norm",
    "hvp", "hvp_batched", "flat_hvp",
    "hessian_diag", "hessian_trace", "diag_power_trace", "top_eigenvalue",
    "adaptive_preconditioner", "preconditioned_sharpness", "stability_threshold",
    "stability_ratio",
]
