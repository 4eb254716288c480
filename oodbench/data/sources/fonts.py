"""``notmnist-fonts``: letters A-J rendered from the fonts installed on this machine.

notMNIST (Bulatov, 2011) was made the same way from fonts found on the web. Fonts come from
Debian ``fonts-urw-base35``, ``fonts-bwht``, ``fonts-dejavu-core`` and matplotlib's bundled
fonts. Both cases are rendered (label = letter index 0-9). A font is dropped when it is corrupt,
lacks one of the letters, renders two letters identically (a symbol or last-resort font) or
duplicates a font already taken (same full name or the same rendered uppercase glyphs).

``notmnist-fonts-val`` holds the fonts of the held-out design families (``data/holdout.py``),
``notmnist-fonts`` the others. Duplicates are found over all fonts before the split, so a font
and its duplicate never land on both sides.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from oodbench.data import holdout
from oodbench.data.cache import file_identity
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import register_found
from oodbench.data.sources import glyphs
from oodbench.data.sources.common import make_set

NAME, VAL_NAME = "notmnist-fonts", "notmnist-fonts-val"
UPPER, LOWER = "ABCDEFGHIJ", "abcdefghij"
SYSTEM_FONT_DIRS = [
    Path("/usr/share/fonts/opentype/urw-base35"),
    Path("/usr/share/fonts/opentype/bwht"),
    Path("/usr/share/fonts/truetype/dejavu"),
]


def font_dirs() -> list[Path]:
    dirs = list(SYSTEM_FONT_DIRS)
    spec = importlib.util.find_spec("matplotlib")
    if spec and spec.submodule_search_locations:
        dirs.append(Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf")
    return dirs


def build(files: list[Path], part: str = "test") -> ImageSet:
    """The fonts of ``part`` ("test" or "validation"), deduplicated over every font."""
    images: list[np.ndarray] = []
    labels: list[int] = []
    kept: list[str] = []
    skipped: dict[str, str] = {}
    seen: set[str] = set()
    for path in files:
        reason, rendered = _render_font(path, seen)
        if reason:
            skipped[path.name] = reason
            continue
        if holdout.part_of(holdout.font_group(path)) != part:
            continue  # rendered all the same: its glyphs must count as seen on both sides
        kept.append(path.name)
        images += rendered
        labels += [i % 10 for i in range(len(rendered))]
    meta = {"source": "installed fonts", "split": "test", "part": part, "fonts": kept,
            "skipped": skipped}  # fmt: skip
    name = NAME if part == "test" else VAL_NAME
    return make_set(name, np.stack(images) if images else np.zeros((0, 28, 28)), labels, 10, meta)


def _render_font(path: Path, seen: set[str]) -> tuple[str, list[np.ndarray]]:
    """("", glyphs) for a usable new font, else (reason it was skipped, [])."""
    try:
        cmap, full_name = glyphs.read_cmap(path)
        if any(ord(c) not in cmap for c in UPPER):
            return "lacks a letter A-J", []
        upper = glyphs.render_all(path, UPPER)
    except Exception as exc:  # fontTools/FreeType raise many types for a damaged file
        return f"unreadable font: {type(exc).__name__}", []
    if upper is None or len({g.tobytes() for g in upper}) < len(UPPER):
        return "letters missing or identical (symbol font)", []
    key = glyphs.glyph_hash(upper)
    if key in seen or full_name in seen:
        return f"duplicate of a font already used ({full_name})", []
    seen.update((key, full_name))
    lower = glyphs.render_all(path, LOWER) if all(ord(c) in cmap for c in LOWER) else None
    return "", upper + (lower or [])


for _name, _part in ((NAME, "test"), (VAL_NAME, "validation")):
    register_found(
        _name,
        geometry="1x28x28",
        num_classes=10,
        source=f"letters A-J rendered from fonts-urw-base35, fonts-bwht, fonts-dejavu-core, "
        f"matplotlib fonts; the {_part} font families (docs/datasets.md)",
        find=lambda root: glyphs.font_files(font_dirs()),  # system fonts: --root is not searched
        missing=f"{_name} found no fonts: run 'make data' "
        "(apt-get install fonts-urw-base35 fonts-bwht fonts-dejavu-core)",
        identity=lambda files, part=_part: {
            "fonts": file_identity(files),
            "px": [glyphs.RENDER_PX, glyphs.BOX_PX],
            "part": [part, *holdout.RULE],
        },
        build=lambda files, part=_part: build(files, part),
        available=lambda root: any(d.is_dir() for d in SYSTEM_FONT_DIRS),
        ood_role=_part,
    )
