"""The reproduction pipeline (layer 10): run experiments with a cache, write the report."""

from adabias.report.runner import Record, run_experiments, run_one
from adabias.report.writer import write_report

__all__ = ["Record", "run_experiments", "run_one", "write_report"]
