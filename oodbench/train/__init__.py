"""Training: the loop (single process or torchrun), its plan (split, schedule), the losses,
the command-line options, the progress log and the checkpoint.

``oodbench.train.train`` is the entry point for Python callers (kept from 0.1.0).
"""

from oodbench.train import losses_family  # noqa: F401  (registers T2FNorm, ELogitNorm, ...)
from oodbench.train.loop import TrainingInterrupted, train

__all__ = ["TrainingInterrupted", "train"]
