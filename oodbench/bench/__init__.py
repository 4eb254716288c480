"""The study runner behind ``oodbench bench`` (losses x seeds, score, report) and the tau sweep."""

from oodbench.bench.runner import run_bench

__all__ = ["run_bench"]
