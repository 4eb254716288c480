"""A tiny icon-theme tree laid out like /usr/share/icons, for ``--root``: icons-ctx8 built from
it in the default suite (tests/test_data_newsets.py) and by the multi-setting bench."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from oodbench.data.sources import iconfiles

# theme folder -> split: two families in train (Faenza with its variant, Moka), one in test
THEMES = {"Faenza": "train", "Faenza-Dark": "train", "Moka": "train", "oxygen": "test"}


def drawing(seed: int, px: int) -> Image.Image:
    """A distinct coloured drawing on transparency (same seed: same drawing, any size)."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGBA", (px, px), (0, 0, 0, 0))
    draw = ImageDraw.Draw(im)
    for _ in range(4):
        x0, y0 = rng.uniform(0, 0.6, 2) * px
        x1, y1 = x0 + rng.uniform(0.2, 0.4) * px, y0 + rng.uniform(0.2, 0.4) * px
        colour = tuple(int(v) for v in rng.integers(0, 256, 3)) + (255,)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return im


def add_icon(root: Path, theme: str, ctx: str, size: int, name: str, seed: int) -> None:
    path = root / "icons" / theme / ctx / str(size) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    drawing(seed, size).save(path)


def icon_tree(root: Path, per_context: int = 2) -> Path:
    """``per_context`` distinct 32 px drawings per theme of ``THEMES`` and context."""
    seed = 0
    for theme in THEMES:
        for ctx in iconfiles.CONTEXTS:
            for k in range(per_context):
                seed += 1
                add_icon(root, theme, ctx, 32, f"{ctx}-{k}", seed)
    return root
