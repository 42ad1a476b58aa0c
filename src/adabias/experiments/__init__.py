"""Experiments (layer 9): one thin module per paper figure, table or claim group, registered on import.

``REGISTRY`` maps experiment ids to :class:`Experiment`; ``adabias reproduce`` runs them.
Every module of this package named ``cks_*``, ``lwl_*`` or ``beyond_*`` is imported here; its
``EXPERIMENT`` (an :class:`Experiment`) is registered; the registry is then put in the papers'
order (:data:`PAPER_ORDER`, DESIGN §4.2), any other id after those, by name.
"""

import importlib
import pkgutil

from adabias.experiments.base import (CLAIM_KINDS, REGISTRY, SCALES, Claim, ClaimSpec, Context,
                                      Decision, Experiment, Result, Tiers, Verdict, register,
                                      select)


def _paper_modules() -> list[str]:
    """Names of this package's experiment modules (``cks_*``, ``lwl_*``, ``beyond_*``), sorted."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__)
                  if info.name.startswith(("cks_", "lwl_", "beyond_")))


#: The experiments in the order of the papers (the report and ``adabias list`` follow it).
PAPER_ORDER = ("cks.fig1", "cks.table1", "cks.flow_order", "cks.thm31", "cks.example23",
               "cks.fig2", "cks.fig3", "cks.fig4", "cks.fig5", "cks.fig6",
               "lwl.table1", "lwl.sharpness", "lwl.adame", "lwl.slow_ode", "lwl.sparse",
               "lwl.matfac", "beyond.memory_flows", "beyond.edge_of_stability")


def _in_paper_order() -> None:
    rank = {id_: index for index, id_ in enumerate(PAPER_ORDER)}
    ordered = sorted(REGISTRY.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))
    REGISTRY.clear()
    REGISTRY.update(ordered)


for _name in _paper_modules():
    _module = importlib.import_module(f"{__name__}.{_name}")
    if not isinstance(getattr(_module, "EXPERIMENT", None), Experiment):
        raise ImportError(f"experiment module {_module.__name__} defines no EXPERIMENT "
                          "(an adabias.experiments.Experiment)")
    register(_module.EXPERIMENT)
_in_paper_order()

__all__ = ["CLAIM_KINDS", "PAPER_ORDER", "REGISTRY", "SCALES", "Claim", "ClaimSpec", "Context",
           "Decision", "Experiment", "Result", "Tiers", "Verdict", "register", "select"]
