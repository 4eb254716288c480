"""Contact sheets: a grid of random samples of a dataset (or per class), saved as a PNG."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from oodbench.data.imageset import ImageSet
from oodbench.io import atomic_write_with


def class_sheet(data: ImageSet, path: Path, per_class: int = 8, seed: int = 0,
                scale: int = 2) -> Path:  # fmt: skip
    """One row per class of ``per_class`` seeded random samples of it, saved as a PNG."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for c in range(data.num_classes):
        members = torch.nonzero(data.labels == c).flatten()
        pick = members[torch.randperm(len(members), generator=gen)[:per_class]]
        blank = torch.full((per_class - len(pick), *data.images.shape[1:]), 128, dtype=torch.uint8)
        rows.append(torch.cat([data.images[pick], blank]))
    return _save(torch.cat(rows), path, per_class, data.channels, scale)


def _save(images: torch.Tensor, path: Path, nrow: int, channels: int, scale: int) -> Path:
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=128)
    image = Image.fromarray(grid.permute(1, 2, 0).numpy())
    if channels == 1:
        image = image.convert("L")
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    atomic_write_with(path, lambda tmp: image.save(tmp, format="PNG", optimize=True))
    return path


def contact_sheet(data: ImageSet, path: Path, rows: int = 8, seed: int = 0, scale: int = 2) -> Path:
    """Write ``rows`` x ``rows`` seeded random samples of ``data`` to ``path`` (PNG)."""
    gen = torch.Generator().manual_seed(seed)
    n = min(rows * rows, len(data))
    pick = torch.randperm(len(data), generator=gen)[:n]
    return _save(data.images[pick], path, rows, data.channels, scale)


def corruption_sheet(data: ImageSet, path: Path, index: int = 0, scale: int = 3) -> Path:
    """Write one image of ``data`` under every corruption (rows) at severities 1..5 (columns
    after the clean image) to ``path`` (PNG), with the corruption names on the left. The image
    is corrupted with its own index's seed, so it is pixel for pixel the one in the cached set."""
    from PIL import ImageDraw

    from oodbench.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt

    clean = data.images[index : index + 1]
    tiles = [
        t
        for name in CORRUPTIONS
        for t in (clean, *(corrupt(clean, name, s, start=index) for s in SEVERITIES))
    ]
    grid = make_grid(torch.cat(tiles), nrow=1 + len(SEVERITIES), padding=2, pad_value=128)
    sheet = Image.fromarray(grid.permute(1, 2, 0).numpy()).convert("RGB")
    sheet = sheet.resize((sheet.width * scale, sheet.height * scale), Image.Resampling.NEAREST)
    margin, row = 110, (data.size[0] + 2) * scale
    out = Image.new("RGB", (sheet.width + margin, sheet.height + 16), "white")
    out.paste(sheet, (margin, 16))
    draw = ImageDraw.Draw(out)
    for col, label in enumerate(["clean", *map(str, SEVERITIES)]):
        draw.text((margin + col * (data.size[1] + 2) * scale + 8, 2), label, fill="black")
    for r, name in enumerate(CORRUPTIONS):
        draw.text((4, 16 + r * row + row // 2 - 6), name, fill="black")
    atomic_write_with(path, lambda tmp: out.save(tmp, format="PNG", optimize=True))
    return path
