"""Experiments (layer 6): one module per paper figure or table, registered on import.

``REGISTRY`` maps experiment ids to :class:`Experiment`; ``adabias reproduce`` runs them.
Every module of this package named ``cks_*`` or ``lwl_*`` is imported here, in name order,
and registers its experiments with the :func:`experiment` decorator.
"""

import importlib
import pkgutil

from adabias.experiments.base import (REGISTRY, Claim, Context, Experiment, Result, experiment,
                                      make_claim, select)


def _paper_modules() -> list[str]:
    """Names of this package's experiment modules (``cks_*``, ``lwl_*``), sorted."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__)
                  if info.name.startswith(("cks_", "lwl_")))


for _name in _paper_modules():
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["REGISTRY", "Claim", "Context", "Experiment", "Result", "experiment", "make_claim", "select"]
