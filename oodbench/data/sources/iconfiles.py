"""Finding, rendering and de-duplicating the icons behind ``icons-ctx8`` (``sources/icons.py``).

A theme's icon ``<theme>/<size>/<context>/<name>.<ext>`` (or ``<context>/<size>/...``) is one
*drawing* of one *family*: a theme and its variants (Faenza-Dark, Papirus-Light, ePapirus,
elementary-xfce) and themes derived from one another (Moka from Faba, MATE and Tango from GNOME's)
are one family, so each (family, context, name) is one drawing, taken once in its best form:
a PNG at 32 px, else 48 px, else larger, else the SVG (rendered by librsvg's ``rsvg-convert``).
Symbolic (monochrome) icons and files below 32 px are left out. Each drawing is composited on
white at 32 x 32; near-blank ones (std of the luma < ``MIN_STD``) are dropped. Finally
drawings whose perceptual hashes (``imagehash.phash``, 64 bits) are within ``NEAR_BITS`` of an
earlier one (sorted order) are dropped as near-duplicates, across sizes, themes and families.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ICON_DIR = Path("/usr/share/icons")
PX = 32
MIN_STD = 12.0
NEAR_BITS = 2
# The Icon Naming Specification's contexts, under the names themes file them by.
CONTEXTS = ("actions", "apps", "categories", "devices", "emblems", "mimetypes", "places", "status")
ALIASES = {"applications": "apps", "mimes": "mimetypes"}
# Themes that share drawings: variants and derivatives are one family (one side of a split).
FAMILY_OF = {"faba": "moka", "mate": "gnome", "menta": "gnome", "adwaita": "gnome",
             "tango": "gnome", "nuovext2": "nuovo", "epapirus": "papirus"}  # fmt: skip
_SIZE = re.compile(r"^(\d+)(?:x\1)?(@2x)?$|^(scalable)$")
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Drawing:
    family: str
    context: str
    name: str
    path: Path
    rank: tuple[int, int, str]  # lower is better: (format and size, variant, theme)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.family, self.context, self.name


def family(theme: str) -> str:
    base = theme.lower().split("-")[0]
    return FAMILY_OF.get(base, base)


def _rank(path: Path, size: int | None, theme: str) -> tuple[int, int, str] | None:
    variant = int("-" in theme)  # Papirus before Papirus-Dark: drawn for light backgrounds
    if path.suffix == ".png":
        if size is None or size < PX:
            return None
        return (0 if size == PX else 1 if size == 48 else 2 + size, variant, theme)
    return (1000 + (0 if size is None else abs(size - PX)), variant, theme)


def scan(root: Path, families: Iterable[str]) -> list[Drawing]:
    """The best file of each (family, context, name), over the themes under ``root`` of
    ``families`` (other themes installed here must not change the set)."""
    best: dict[tuple[str, str, str], Drawing] = {}
    wanted = set(families)
    for theme_dir in sorted(p for p in root.iterdir() if p.is_dir() and family(p.name) in wanted):
        theme = theme_dir.name
        for path in sorted(theme_dir.rglob("*")):
            if path.suffix not in (".png", ".svg") or path.is_symlink() or not path.is_file():
                continue
            if "symbolic" in path.stem or "symbolic" in str(path.parent):
                continue
            parts = path.relative_to(theme_dir).parts[:-1]
            ctx = next((ALIASES.get(p, p) for p in parts if ALIASES.get(p, p) in CONTEXTS), None)
            sizes = [m for p in parts if (m := _SIZE.match(p))]
            if ctx is None or len(sizes) != 1:
                continue
            size = (
                None
                if sizes[0].group(3)
                else int(sizes[0].group(1)) * (2 if sizes[0].group(2) else 1)
            )
            rank = _rank(path, size, theme)
            if rank is None:
                continue
            found = Drawing(family(theme), ctx, path.stem, path, rank)
            if found.key not in best or rank < best[found.key].rank:
                best[found.key] = found
    return [best[k] for k in sorted(best)]


def _decode(drawing: Drawing) -> Image.Image:
    if drawing.path.suffix == ".svg":
        png = subprocess.run(
            ["rsvg-convert", "-w", str(PX), "-h", str(PX), "-f", "png", str(drawing.path)],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        return Image.open(io.BytesIO(png))
    return Image.open(drawing.path)


def render(drawing: Drawing) -> np.ndarray | None:
    """32 x 32 x 3 uint8 on white, or None when unreadable or near-blank."""
    try:
        with _decode(drawing) as im:
            rgba = im.convert("RGBA")
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if rgba.size != (PX, PX):  # Pillow resizes RGBA with premultiplied alpha
        rgba.thumbnail((PX, PX), Image.Resampling.LANCZOS)
        frame = Image.new("RGBA", (PX, PX), (0, 0, 0, 0))
        frame.paste(rgba, ((PX - rgba.width) // 2, (PX - rgba.height) // 2))
        rgba = frame
    white = Image.new("RGBA", (PX, PX), (255, 255, 255, 255))
    out = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return out if (out @ _LUMA).std() >= MIN_STD else None


def render_all(drawings: Iterable[Drawing], workers: int = 4) -> list[np.ndarray | None]:
    """``render`` over many drawings, in order (threads: rsvg-convert runs outside the GIL)."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(render, drawings))


def phashes(images: list[np.ndarray]) -> np.ndarray:
    """64-bit perceptual hashes (imagehash.phash of the 32 x 32 rendering) as uint64."""
    import imagehash

    out = np.zeros(len(images), dtype=np.uint64)
    for i, image in enumerate(images):
        bits = imagehash.phash(Image.fromarray(image)).hash.flatten()
        out[i] = np.packbits(bits).view(">u8")[0]
    return out


def near_duplicates(hashes: np.ndarray, bits: int = NEAR_BITS) -> np.ndarray:
    """Mask of the images within ``bits`` Hamming distance of an earlier *kept* image."""
    drop = np.zeros(len(hashes), dtype=bool)
    kept = np.zeros(len(hashes), dtype=np.uint64)
    n = 0
    for i, h in enumerate(hashes):
        if n and int(np.bitwise_count(kept[:n] ^ h).min()) <= bits:
            drop[i] = True
        else:
            kept[n], n = h, n + 1
    return drop
