"""Training: the loop (single process or torchrun), its plan (schedule, augmentation draws),
the command-line options, the progress log and the checkpoint. The losses it trains with are
registered in ``oodbench.losses``, the ID split is ``oodbench.data.split``'s.

``oodbench.train.train`` is the entry point for Python callers (kept from 0.1.0).
"""

from oodbench.train.loop import TrainingInterrupted, train

__all__ = ["TrainingInterrupted", "train"]
