"""Discrete optimizers as ``optax.GradientTransformation`` (layer 1).

CKS: :func:`adam` (Definition 2.1, ε inside the root, bias-corrected), :func:`rmsprop`,
:func:`gd`, :func:`heavy_ball`. LWL: :func:`agm` with a statistic V and a preconditioner
S, and its rows :func:`adame`, :func:`adam_mini`, :func:`adalayer` (no bias correction,
ε outside the root).
"""

from adabias.optim.adam import adam, rmsprop, scale_by_cks_adam
from adabias.optim.agm import (
    ScaleByAGMState,
    adalayer,
    adam_mini,
    adame,
    agm,
    block_mean,
    diagonal,
    inverse_power,
    inverse_root,
    leaf_mean,
    scale_by_agm,
)
from adabias.optim.momentum import gd, heavy_ball
from adabias.optim.smoothed import (SmoothedSignState, scale_by_smoothed_lion,
                                    scale_by_smoothed_signum, smoothed_lion, smoothed_sign,
                                    smoothed_signum)

__all__ = [
    "adam", "rmsprop", "scale_by_cks_adam", "gd", "heavy_ball",
    "agm", "scale_by_agm", "ScaleByAGMState", "adame", "adam_mini", "adalayer",
    "diagonal", "block_mean", "leaf_mean", "inverse_root", "inverse_power",
    "smoothed_lion", "smoothed_signum", "scale_by_smoothed_lion", "scale_by_smoothed_signum",
    "smoothed_sign", "SmoothedSignState",
]
