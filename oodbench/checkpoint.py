"""Kept for 0.1.0 callers: checkpoints moved to ``oodbench.train.checkpoint``."""

from oodbench.train.checkpoint import load_run

__all__ = ["load_run"]
