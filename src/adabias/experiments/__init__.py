"""Experiments (layer 6): one module per paper figure or table, registered on import.

``REGISTRY`` maps experiment ids to :class:`Experiment`; ``adabias reproduce`` runs them.
"""

from adabias.experiments import cks_fig1, cks_table1  # noqa: F401  (register)
from adabias.experiments.base import (REGISTRY, Claim, Context, Experiment, Result, experiment,
                                      make_claim, select)

__all__ = ["REGISTRY", "Claim", "Context", "Experiment", "Result", "experiment", "make_claim", "select"]
