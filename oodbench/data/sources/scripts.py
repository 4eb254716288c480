"""``world-scripts``: letters of many writing systems from Debian ``fonts-noto-core``.

An Omniglot-like OOD set for character-shaped ID data. Each Unicode script (ISO 15924 code,
from ``fontTools.unicodedata.script``) is drawn with the Regular Noto font that covers most of
its letters (general category L*). Up to ``PER_SCRIPT`` letters, evenly spaced over the
script's code points, are rendered like notMNIST (scripts without letters, such as Braille,
use their symbols). Label = index of the script in ``classes``.
Scripts with fewer than ``MIN_PER_SCRIPT`` renderable letters are dropped.

``world-scripts-nolatin`` is ``world-scripts`` less its Latin letters, the far-OOD set of an ID
set of Latin characters (``alnum-fonts``).

``world-scripts-val`` holds the held-out scripts (``data/holdout.py``: by ISO 15924 code),
``world-scripts`` the others: no script, hence no letter, is on both sides.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from pathlib import Path

import numpy as np
from fontTools import unicodedata as ft_unicodedata

from oodbench.data import holdout
from oodbench.data.cache import file_identity
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import register_found
from oodbench.data.sources import glyphs
from oodbench.data.sources.common import make_set

NAME, VAL_NAME, NOLATIN = "world-scripts", "world-scripts-val", "world-scripts-nolatin"
NOTO_DIR = Path("/usr/share/fonts/truetype/noto")
PER_SCRIPT = 40
MIN_PER_SCRIPT = 10
_NOT_SCRIPTS = {"Zyyy", "Zinh", "Zzzz"}  # common, inherited, unknown


def noto_dir(root: Path | None) -> Path:
    return root / "noto" if root is not None and (root / "noto").is_dir() else NOTO_DIR


def regular_fonts(folder: Path) -> list[Path]:
    return [p for p in glyphs.font_files([folder]) if p.stem.endswith("-Regular")]


def letters_by_script(files: list[Path]) -> tuple[dict[str, tuple[Path, list[int]]], dict]:
    """script -> (the font with most of its letters, those letters), and fonts skipped.

    Scripts with no letters at all (Braille, SignWriting) use their symbols (category So).
    """
    best: dict[tuple[str, bool], tuple[Path, list[int]]] = {}
    skipped: dict[str, str] = {}
    for path in files:
        try:
            cmap, _ = glyphs.read_cmap(path)
        except Exception as exc:  # a damaged font is reported, the rest still render
            skipped[path.name] = f"unreadable font: {type(exc).__name__}"
            continue
        per: dict[tuple[str, bool], list[int]] = defaultdict(list)
        for cp in sorted(cmap):
            category = unicodedata.category(chr(cp))
            if category[0] == "L" or category == "So":
                per[(ft_unicodedata.script(chr(cp)), category[0] == "L")].append(cp)
        for key, cps in per.items():
            if key[0] not in _NOT_SCRIPTS and len(cps) > len(best.get(key, (None, []))[1]):
                best[key] = (path, cps)
    scripts = {script for script, _ in best}
    chosen = {s: best[(s, True)] if (s, True) in best else best[(s, False)] for s in scripts}
    return chosen, skipped


def pick(cps: list[int], n: int) -> list[int]:
    """``n`` code points evenly spaced over the sorted list (all of them when there are fewer)."""
    if len(cps) <= n:
        return cps
    return [cps[int(i)] for i in np.linspace(0, len(cps) - 1, n).round()]


def build(
    files: list[Path], only: list[str] | None = None, part: str = "test", name: str = NAME,
    without: tuple[str, ...] = (),
) -> ImageSet:  # fmt: skip
    """The scripts of ``part`` ("test" or "validation") less ``without``, or those in ``only``."""
    best, skipped = letters_by_script(files)
    images: list[np.ndarray] = []
    labels: list[int] = []
    classes: list[str] = []
    for script in sorted(best):
        keep = script in only if only is not None else holdout.part_of(script) == part
        keep = keep and script not in without
        if not keep:  # ``only`` names scripts explicitly, whatever their part
            continue
        path, cps = best[script]
        font = glyphs.load_font(path)
        rendered = [
            g
            for cp in pick(cps, PER_SCRIPT)
            if (g := glyphs.render_glyph(font, chr(cp))) is not None
        ]
        if len(rendered) < MIN_PER_SCRIPT:
            continue
        images += rendered
        labels += [len(classes)] * len(rendered)
        classes.append(script)
    meta = {
        "source": str(files[0].parent) if files else "",
        "split": "test",
        "part": part,
        "classes": classes,
        "class_names": [ft_unicodedata.script_name(s) for s in classes],
        "fonts": {s: best[s][0].name for s in classes},
        "skipped": skipped,
    }
    stack = np.stack(images) if images else np.zeros((0, 28, 28))
    name = VAL_NAME if part == "validation" and name == NAME else name
    return make_set(name, stack, labels, len(classes), meta)


for _name, _part in ((NAME, "test"), (VAL_NAME, "validation")):
    register_found(
        _name,
        geometry="1x28x28",
        num_classes=0,
        source=f"letters of the {_part} scripts (~3/4 test, ~1/4 validation of ~140) rendered "
        "from fonts-noto-core (label = script)",
        find=lambda root: regular_fonts(noto_dir(root)),
        missing=f"{_name} found no Noto fonts: run 'make data' (apt-get install fonts-noto-core)",
        identity=lambda files, part=_part: {
            "fonts": file_identity(files),
            "px": [glyphs.RENDER_PX, glyphs.BOX_PX],
            "n": [PER_SCRIPT, MIN_PER_SCRIPT],
            "part": [part, *holdout.RULE],
        },
        build=lambda files, part=_part: build(files, part=part),
        ood_role=_part,
    )


register_found(
    NOLATIN,
    geometry="1x28x28",
    num_classes=0,
    source="world-scripts without the Latin script (for Latin-letter ID sets), fonts-noto-core",
    find=lambda root: regular_fonts(noto_dir(root)),
    missing=f"{NOLATIN} found no Noto fonts: run 'make data' (apt-get install fonts-noto-core)",
    identity=lambda files: {
        "fonts": file_identity(files),
        "px": [glyphs.RENDER_PX, glyphs.BOX_PX],
        "n": [PER_SCRIPT, MIN_PER_SCRIPT],
        "part": ["test", *holdout.RULE],
        "without": ["Latn"],
    },
    build=lambda files: build(files, name=NOLATIN, without=("Latn",)),
)
