"""Batched augmentation on uint8 tensors, on whatever device the batch lives on.

Random crop (with zero padding) and horizontal flip are one gather from a pre-padded uint8
copy of the training set, so no per-sample Python or PIL work sits in the training loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F


def normalize(
    x: torch.Tensor, mean: Sequence[float], std: Sequence[float], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """uint8 NCHW in [0, 255] -> ``(x / 255 - mean) / std`` as ``dtype``, as one fused affine."""
    shape = (1, -1, 1, 1)
    std_t = torch.tensor(std, device=x.device, dtype=torch.float32).view(shape)
    mean_t = torch.tensor(mean, device=x.device, dtype=torch.float32).view(shape)
    return torch.addcmul(-mean_t / std_t, x.float(), 1.0 / (255.0 * std_t)).to(dtype)


def pad_images(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad a uint8 NCHW set once, so each batch's crops are a plain gather."""
    return F.pad(images, (padding,) * 4) if padding else images


def draw_crop_flip(
    n: int, padding: int, flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample crop offsets (dy, dx) in [0, 2 * padding] and flip flags, drawn on the CPU.

    Drawing on the CPU from one seeded generator makes the augmentation identical on every
    device and exactly reproducible after a resume.
    """
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    return dy, dx, flips


def crop_flip(
    padded: torch.Tensor,
    index: torch.Tensor,
    dy: torch.Tensor,
    dx: torch.Tensor,
    flips: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """Gather ``padded[index]`` cropped at (dy, dx) to ``size``, mirrored where ``flips``.

    The flip is folded into the column index, so crop + flip is a single indexing op.
    """
    h, w = size
    dev = padded.device
    rows = dy.to(dev)[:, None] + torch.arange(h, device=dev)  # N x H
    cols = torch.arange(w, device=dev).expand(len(index), w)
    cols = torch.where(flips.to(dev)[:, None], w - 1 - cols, cols) + dx.to(dev)[:, None]  # N x W
    n = index.to(dev)[:, None, None]
    out = padded[n, :, rows[:, :, None], cols[:, None, :]]  # N x H x W x C
    return out.permute(0, 3, 1, 2)
