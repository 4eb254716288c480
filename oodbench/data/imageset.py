"""ImageSet: the one in-memory dataset type. Training, extraction and tests never see files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import torch


@dataclass(frozen=True)
class ImageSet:
    """``images``: uint8 N x C x H x W; ``labels``: int64 (-1 where an OOD set has no classes).

    ``mean``/``std`` are per-channel in [0, 1] units, used to normalise ``images / 255``.
    ``meta`` records provenance (source path, adaptation applied, seed, ...).
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"{self.name}: images must be uint8 NCHW, got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"{self.name}: labels must be int64 of shape (N,)")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"{self.name}: mean/std need one value per channel")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, indices: torch.Tensor | slice) -> ImageSet:
        return replace(self, images=self.images[indices], labels=self.labels[indices])

    def checksum(self) -> str:
        """SHA-256 of the images and labels as built (the run's record of what it read).

        Computed once per object; ``subset`` and ``replace`` make new objects, which hash their
        own tensors. A set read from the dataset cache knows it already (``remember_checksum``).
        """
        known = self.__dict__.get("_checksum")
        if known is None:
            known = content_digest(self.images, self.labels)
            remember_checksum(self, known)
        return str(known)


def content_digest(images: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(images.contiguous().numpy().tobytes())
    h.update(labels.contiguous().numpy().tobytes())
    return h.hexdigest()


def remember_checksum(data: ImageSet, digest: str) -> None:
    """Store a checksum verified elsewhere (the cache file's) so it is not computed again."""
    object.__setattr__(data, "_checksum", digest)  # a memo, not a field: replace() drops it
