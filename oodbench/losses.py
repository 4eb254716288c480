"""Kept for 0.1.0 callers: the losses moved to ``oodbench.train.losses``."""

from oodbench.train.losses import LOSSES, logit_norm_loss, make_loss

__all__ = ["LOSSES", "logit_norm_loss", "make_loss"]
