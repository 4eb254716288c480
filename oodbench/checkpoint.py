"""Kept for 0.1.0 callers: loading a run moved to ``oodbench.models.weights``."""

from oodbench.models.weights import load_run

__all__ = ["load_run"]
