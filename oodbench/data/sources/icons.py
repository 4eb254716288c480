"""``icons-ctx8``: colour 3 x 32 x 32 icons of the Debian icon themes, labelled by context.

The classes are the Icon Naming Specification's contexts (actions, apps, categories, devices,
emblems, mimetypes, places, status): what a desktop uses an icon for. Each drawing is taken once,
in its best file, and exact and near-duplicates are removed across sizes, themes and families
(``sources/iconfiles.py``; the counts are in docs/datasets.md).

Split rule (group-disjoint): the *test* split is every drawing of the theme families in
``TEST_FAMILIES``, the *train* split the other families. A family is a theme with its variants
and the themes derived from it (``iconfiles.FAMILY_OF``), and near-duplicates are removed over
all families before the split, so no drawing is on both sides.

Near-OOD track (like ``fashion-mnist-known6``): ``icons-ctx8-known5`` trains on five contexts;
the test images of ``UNKNOWN`` are ``icons-ctx8-unknown3``, their training images (never trained
on) ``icons-ctx8-unknown3-val``.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from oodbench.data.cache import cached, file_identity
from oodbench.data.imageset import ImageSet
from oodbench.data.sources import classsplit, iconfiles
from oodbench.data.sources.common import make_set
from oodbench.errors import UserError

NAME = "icons-ctx8"
CLASSES = iconfiles.CONTEXTS
TEST_FAMILIES = ("oxygen", "numix", "gartoon", "suede")
UNKNOWN = (CLASSES.index("devices"), CLASSES.index("mimetypes"), CLASSES.index("status"))
RECIPE = 1  # bump when scanning, rendering or de-duplication changes
# The Debian packages the set is built from, and a theme folder each one installs.
PACKAGES = {
    "faenza-icon-theme": "Faenza", "gnome-icon-theme": "gnome", "oxygen-icon-theme": "oxygen",
    "mate-icon-theme": "mate", "tango-icon-theme": "Tango", "lxde-icon-theme": "nuoveXT2",
    "elementary-icon-theme": "elementary", "elementary-xfce-icon-theme": "elementary-xfce",
    "gnome-icon-theme-nuovo": "Nuovo", "gnome-icon-theme-yasis": "yasis",
    "gnome-icon-theme-gartoon": "gartoon", "gnome-icon-theme-suede": "Suede",
    "moka-icon-theme": "Moka", "faba-icon-theme": "Faba", "numix-icon-theme": "Numix",
    "breeze-icon-theme": "breeze", "papirus-icon-theme": "Papirus",
    "adwaita-icon-theme": "Adwaita", "librsvg2-bin": "",
}  # fmt: skip
FAMILIES = sorted({iconfiles.family(theme) for theme in PACKAGES.values() if theme})
INSTALL = f"run 'make data' (apt-get install {' '.join(PACKAGES)})"


def icon_dir(root: Path | None) -> Path:
    """``--root/icons`` when it exists (laid out like /usr/share/icons), else the system's."""
    if root is not None and (root / "icons").is_dir():
        return root / "icons"
    return iconfiles.ICON_DIR


def missing_packages(root: Path | None) -> list[str]:
    """The packages of ``PACKAGES`` not installed (none when ``--root/icons`` is given)."""
    if icon_dir(root) != iconfiles.ICON_DIR:
        return []
    return [
        pkg
        for pkg, theme in PACKAGES.items()
        if not (theme and (iconfiles.ICON_DIR / theme).is_dir())
        and not (not theme and _on_path("rsvg-convert"))
    ]


def _on_path(program: str) -> bool:
    return any(
        (Path(d) / program).is_file() for d in os.environ.get("PATH", "").split(os.pathsep) if d
    )


def _identity(folder: Path) -> list:
    """Cheap: each theme's index.theme (dpkg stamps it with the package's mtime)."""
    themes = sorted(
        p for p in folder.iterdir() if p.is_dir() and iconfiles.family(p.name) in FAMILIES
    )
    marks = [t / "index.theme" if (t / "index.theme").is_file() else t for t in themes]
    return [file_identity(marks), RECIPE, iconfiles.PX, iconfiles.MIN_STD, iconfiles.NEAR_BITS,
            list(TEST_FAMILIES)]  # fmt: skip


def build(folder: Path) -> ImageSet:
    """Every kept drawing, both splits; ``meta["family"]`` holds each image's family index."""
    drawings = iconfiles.scan(folder, FAMILIES)
    rendered = iconfiles.render_all(drawings)
    ok = [i for i, image in enumerate(rendered) if image is not None]
    images = [rendered[i] for i in ok]
    if not images:
        raise UserError(f"{NAME}: no usable icons under {folder}; {INSTALL}")
    duplicate = iconfiles.near_duplicates(iconfiles.phashes(images))  # type: ignore[arg-type]
    kept = [drawings[i] for i, dup in zip(ok, duplicate, strict=True) if not dup]
    stack = np.stack([im for im, dup in zip(images, duplicate, strict=True) if not dup])
    families = sorted({d.family for d in kept})
    meta = {
        "source": str(folder),
        "classes": list(CLASSES),
        "families": families,
        "family": [families.index(d.family) for d in kept],
        "test_families": list(TEST_FAMILIES),
        "counts": {"drawings": len(drawings), "blank_or_unreadable": len(drawings) - len(ok),
                   "near_duplicates": int(duplicate.sum()), "kept": len(kept)},
        "files": [str(d.path.relative_to(folder)) for d in kept],
    }  # fmt: skip
    labels = [CLASSES.index(d.context) for d in kept]
    return make_set(NAME, stack.transpose(0, 3, 1, 2), labels, len(CLASSES), meta)


def split_of(full: ImageSet, split: str) -> ImageSet:
    """The ``split`` ("train" or "test") of the full build, by family."""
    test = [full.meta["families"].index(f) for f in TEST_FAMILIES if f in full.meta["families"]]
    in_test = torch.isin(torch.tensor(full.meta["family"]), torch.tensor(test, dtype=torch.long))
    keep = in_test if split == "test" else ~in_test
    names = [
        full.meta["families"][f]
        for f, k in zip(full.meta["family"], keep.tolist(), strict=True)
        if k
    ]
    meta = {k: v for k, v in full.meta.items() if k not in ("family", "files")}
    meta |= {"split": split, "split_families": dict(sorted(Counter(names).items()))}
    out = full.subset(keep)
    split_set = ImageSet(out.images, out.labels, NAME, full.num_classes, full.mean, full.std, meta)
    return classsplit.stored_order(split_set, split)


def load_full(root: Path | None) -> ImageSet:
    folder = icon_dir(root)
    missing = missing_packages(root)
    if missing or not folder.is_dir():
        raise UserError(f"{NAME} needs {', '.join(missing) or folder}: {INSTALL}")
    return cached(NAME, "all", _identity(folder), lambda: build(folder))


def _available(root: Path | None) -> bool:
    return icon_dir(root).is_dir() and not missing_packages(root)


classsplit.register_grouped_id_set(
    NAME,
    geometry="3x32x32",
    classes=CLASSES,
    unknown=UNKNOWN,
    source="icons of 18 Debian icon-theme packages (Papirus, Breeze, Numix, Oxygen, "
    "Faenza, ...) by context; test split = the Oxygen, Numix, Gartoon, Suede themes",
    size="10,910 train, 2,546 test",
    split=lambda root, split: split_of(load_full(root), split),
    available=_available,
    install=INSTALL,
)
