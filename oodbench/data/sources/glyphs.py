"""Glyph rendering shared by ``notmnist-fonts`` and ``world-scripts``.

A glyph is drawn large (``RENDER_PX``) in white on black, cropped to its ink bounding box,
scaled so its longer side is ``BOX_PX`` (aspect kept, antialiased) and pasted in the centre of
a 28 x 28 frame, which is how notMNIST and MNIST frame their characters.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

RENDER_PX = 64
BOX_PX = 24
OUT_PX = 28
FONT_SUFFIXES = (".ttf", ".otf")


def font_files(dirs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        if d.is_dir():
            files += sorted(p for p in d.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
    return files


def read_cmap(path: Path) -> tuple[dict[int, str], str]:
    """(codepoint -> glyph name, full font name); raises on a corrupt file."""
    from fontTools.ttLib import TTFont

    with TTFont(str(path), lazy=True, fontNumber=0) as font:
        cmap = font.getBestCmap() or {}
        name = font["name"].getDebugName(4) or path.stem
    return dict(cmap), name


def load_font(path: Path) -> ImageFont.FreeTypeFont:
    # BASIC layout: one glyph per character, identical on machines with or without raqm.
    return ImageFont.truetype(str(path), RENDER_PX, layout_engine=ImageFont.Layout.BASIC)


def render_glyph(font: ImageFont.FreeTypeFont, char: str) -> np.ndarray | None:
    """The 28 x 28 uint8 image of ``char``, or None when the glyph has no ink."""
    left, top, right, bottom = font.getbbox(char)
    if right <= left or bottom <= top:
        return None
    canvas = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(canvas).text((1 - left, 1 - top), char, font=font, fill=255)
    ink = canvas.getbbox()
    if ink is None:
        return None
    glyph = canvas.crop(ink)
    w, h = glyph.size
    scale = BOX_PX / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    glyph = glyph.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    frame = Image.new("L", (OUT_PX, OUT_PX), 0)
    frame.paste(glyph, ((OUT_PX - size[0]) // 2, (OUT_PX - size[1]) // 2))
    out = np.asarray(frame, dtype=np.uint8)
    return out if out.max() > 0 else None


def render_all(path: Path, chars: str) -> list[np.ndarray] | None:
    """Render every char with one font; None if any of them has no ink."""
    font = load_font(path)
    out = [render_glyph(font, c) for c in chars]
    return None if any(g is None for g in out) else out  # type: ignore[return-value]


def glyph_hash(glyphs: list[np.ndarray]) -> str:
    return hashlib.sha256(np.stack(glyphs).tobytes()).hexdigest()
