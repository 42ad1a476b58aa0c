"""Continuous-time approximations (layer 4): modified flows and slow ODEs as vector
fields, solved with diffrax, and tools comparing a flow with a trajectory."""

from adabias.flows.solve import OrderFit, fit_order, global_error, solve

__all__ = ["solve", "global_error", "fit_order", "OrderFit"]
