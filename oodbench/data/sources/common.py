"""Helpers shared by the sources: array -> ImageSet, per-channel stats, image decoding."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench.data.imageset import ImageSet
from oodbench.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga", ".webp")


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 NCHW images, in [0, 1] units.

    Estimated on an evenly strided sample of about 2**20 pixels per channel, so the cost stays
    small for large or up-sized sets (``adapt`` calls this on every chunk it converts).
    """
    per_image = images.shape[2] * images.shape[3]
    k = max(1, min(len(images), 2**20 // per_image))
    x = images[:: max(1, len(images) // k)][:k].to(torch.float64).div_(255)
    x = x.transpose(0, 1).reshape(images.shape[1], -1)
    std = x.std(dim=1, correction=0).clamp_min(1e-3)  # noise-free sets must still divide safely
    mean = x.mean(dim=1)
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


def make_set(
    name: str,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | None,
    num_classes: int,
    meta: dict[str, Any],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> ImageSet:
    """Build an ImageSet; refuse an empty one (an OOD set with no samples is a user problem)."""
    imgs = torch.as_tensor(images, dtype=torch.uint8)
    if imgs.ndim == 3:
        imgs = imgs.unsqueeze(1)
    if len(imgs) == 0:
        raise UserError(f"{name}: no samples found ({meta.get('source', '?')}); check the files")
    labs = (
        torch.full((len(imgs),), -1, dtype=torch.int64)
        if labels is None
        else torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    )
    if mean is None or std is None:
        mean, std = channel_stats(imgs)
    return ImageSet(
        images=imgs.contiguous(),
        labels=labs,
        name=name,
        num_classes=num_classes,
        mean=tuple(mean),
        std=tuple(std),
        meta=meta,
    )


def to_square(img: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (antialiased) and centre-crop, as OOD test sets do."""
    if img.shape[-2:] != (size, size):
        from torchvision.transforms.v2 import functional as TF  # torchvision only when resizing

        img = TF.resize(img, [size], antialias=True)
        img = TF.center_crop(img, [size, size])
    return img


def read_rgb(path: Path, size: int) -> torch.Tensor:
    """Decode one image file to a uint8 3 x size x size tensor (Pillow handles every format)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return to_square(torch.from_numpy(arr.copy()).permute(2, 0, 1), size)


def find_images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
