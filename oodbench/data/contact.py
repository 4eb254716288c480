"""Contact sheets: an 8 x 8 grid of random samples of a dataset, saved as a PNG."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from oodbench.data.imageset import ImageSet
from oodbench.io import atomic_write_with


def contact_sheet(data: ImageSet, path: Path, rows: int = 8, seed: int = 0, scale: int = 2) -> Path:
    """Write ``rows`` x ``rows`` seeded random samples of ``data`` to ``path`` (PNG)."""
    gen = torch.Generator().manual_seed(seed)
    n = min(rows * rows, len(data))
    pick = torch.randperm(len(data), generator=gen)[:n]
    grid = make_grid(data.images[pick], nrow=rows, padding=2, pad_value=128)
    image = Image.fromarray(grid.permute(1, 2, 0).numpy())
    if data.channels == 1:
        image = image.convert("L")
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    atomic_write_with(path, lambda tmp: image.save(tmp, format="PNG", optimize=True))
    return path
