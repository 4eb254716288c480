"""``textures-openarena``: random 32 x 32 RGB crops of the game textures in Debian
``openarena-081-textures`` (``pak4-textures.pk3`` is a zip of jpg/tga images).

A stand-in for DTD that every machine can install. Each texture image gives up to
``CROPS_PER_IMAGE`` crops at seeded random positions; near-constant crops (std of the luma
< 12 on the 0-255 scale) are dropped, then a seeded draw keeps at most ``MAX_CROPS``.

``textures-openarena-val`` holds the textures of the held-out folders of the pk3
(``data/holdout.py``), ``textures-openarena`` the others: no texture file, and no folder of
variants of one texture, is on both sides.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from oodbench.data import holdout
from oodbench.data.cache import file_identity
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import register_found
from oodbench.data.sources.common import make_set
from oodbench.errors import UserError

NAME, VAL_NAME = "textures-openarena", "textures-openarena-val"
PK3 = Path("/usr/share/games/openarena/baseoa/pak4-textures.pk3")
CROP, CROPS_PER_IMAGE, MAX_CROPS, MIN_STD, SEED = 32, 4, 5000, 12.0, 20_220_003
_LUMA = np.array([0.299, 0.587, 0.114])
RECIPE = 3  # bump when the crop rule changes, so cached crops are rebuilt


def pk3_path(root: Path | None) -> Path:
    if root is not None and (root / PK3.name).is_file():
        return root / PK3.name
    return PK3


def crops_of(image: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Random CROP x CROP crops of one H x W x 3 image, keeping only textured ones."""
    h, w = image.shape[:2]
    if h < CROP or w < CROP:
        return []
    ys = rng.integers(0, h - CROP + 1, CROPS_PER_IMAGE)
    xs = rng.integers(0, w - CROP + 1, CROPS_PER_IMAGE)
    crops = [image[y : y + CROP, x : x + CROP] for y, x in zip(ys, xs, strict=True)]
    # Std of the luma (ITU-R 601), not of all values: a flat orange crop has a large std
    # *across* channels, and noise in a dim channel alone does not make a texture.
    return [c for c in crops if (c @ _LUMA).std() >= MIN_STD]


def build(pk3: Path, part: str = "test") -> ImageSet:
    """Crops of the textures of ``part`` ("test" or "validation")."""
    rng = np.random.default_rng(SEED)
    crops: list[np.ndarray] = []
    bad: list[str] = []
    try:
        with zipfile.ZipFile(pk3) as archive:
            members = sorted(
                n
                for n in archive.namelist()
                if n.lower().endswith((".jpg", ".tga"))
                and holdout.part_of(holdout.texture_group(n)) == part
            )
            for member in members:
                try:
                    with Image.open(io.BytesIO(archive.read(member))) as im:
                        image = np.asarray(im.convert("RGB"))
                except (OSError, ValueError):  # one damaged texture must not sink the set
                    bad.append(member)
                    continue
                crops += crops_of(image, rng)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UserError(f"cannot read {pk3}: {exc}; reinstall openarena-081-textures") from exc
    if len(crops) > MAX_CROPS:
        keep = np.sort(rng.choice(len(crops), MAX_CROPS, replace=False))
        crops = [crops[i] for i in keep]
    stack = np.stack(crops).transpose(0, 3, 1, 2) if crops else np.zeros((0, 3, CROP, CROP))
    meta = {
        "source": str(pk3),
        "split": "test",
        "part": part,
        "seed": SEED,
        "images": len(members),
        "unreadable": bad,
    }
    return make_set(NAME if part == "test" else VAL_NAME, stack, None, 0, meta)


for _name, _part in ((NAME, "test"), (VAL_NAME, "validation")):
    register_found(
        _name,
        geometry="3x32x32",
        num_classes=0,
        source=f"32x32 crops of the {_part} folders of Debian openarena-081-textures "
        "(pak4-textures.pk3), GPL-2",
        find=lambda root: pk3 if (pk3 := pk3_path(root)).is_file() else None,
        missing=f"{PK3} not found: run 'make data' (apt-get install openarena-081-textures)"
        f" or put {PK3.name} under --root",
        identity=lambda pk3, part=_part: {
            "pk3": file_identity([pk3]),
            "recipe": [RECIPE, CROP, CROPS_PER_IMAGE, MAX_CROPS, MIN_STD, SEED],
            "part": [part, *holdout.RULE],
        },
        build=lambda pk3, part=_part: build(pk3, part),
        ood_role=_part,
    )
