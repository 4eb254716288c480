"""The ID split: which training images a run holds out for validation.

Training, scoring and ``oodbench import`` all ask this one function, so the images every choice
is made on (tau, detector hyperparameters, the temperature of ECE) are the same ones training
never saw. It is a pure function of the seed and the set's size.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import torch

from oodbench.data.imageset import ImageSet
from oodbench.errors import UserError


class SplitSpec(Protocol):
    """What the split reads from a run's config (a TrainConfig has these fields)."""

    seed: int
    val_size: int
    subset: int | None


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from (seed, purpose, epoch, ...): independent streams, no shared state."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def validation_split(cfg: SplitSpec, train_set: ImageSet) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx): a seeded hold-out of ``val_size``; ``--subset`` = first N of the rest.

    The hold-out is drawn from the full training set, so it does not depend on ``--subset``.
    """
    n = len(train_set)
    if cfg.val_size >= n:
        raise UserError(f"--val-size {cfg.val_size} leaves no training data ({n} images)")
    g = torch.Generator().manual_seed(derive_seed(cfg.seed, "val"))
    perm = torch.randperm(n, generator=g)
    val_idx, train_idx = perm[: cfg.val_size].sort().values, perm[cfg.val_size :].sort().values
    if cfg.subset is not None:
        if cfg.subset > len(train_idx):
            raise UserError(
                f"--subset {cfg.subset} is larger than the {len(train_idx)} training images of "
                f"{train_set.name} left after --val-size {cfg.val_size}; use a smaller --subset"
            )
        train_idx = train_idx[: cfg.subset]
    return train_idx, val_idx
