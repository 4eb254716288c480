"""Kept for 0.1.0 callers: extraction moved to ``oodbench.scoring.extract``, ``Outputs`` to
``oodbench.models.outputs``."""

from oodbench.models.outputs import Outputs
from oodbench.scoring.extract import cached_outputs, extract, read_outputs

__all__ = ["Outputs", "cached_outputs", "extract", "read_outputs"]
