"""Image-folder OOD sets: DTD textures, Places365, LSUN (crop, resize) and iSUN.

Every image is decoded to RGB, its shorter side resized to 32 (antialiased) and centre-cropped
to 32 x 32, the OOD test transform of the ODIN, Energy and LogitNorm code. Pass
``geometry=(3, S, S)`` to decode at S x S instead. The folder names below are the ones those
releases unpack to; the first one found under ``--root`` (or the download dir) is used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from oodbench.data.cache import cached, download_dir, file_identity
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import DatasetSpec, LoadRequest, check_split, register
from oodbench.data.sources.common import find_images, make_set, read_rgb
from oodbench.errors import UserError

SIZE = 32
FOLDERS = {
    "textures": ("dtd/dtd/images", "dtd/images", "textures/images", "Textures/images", "dtd"),
    "places365": ("places365", "Places365", "val_256", "places365/val_256"),
    "lsun-crop": ("LSUN", "LSUN_C", "LSUN_crop", "lsun-crop", "lsun_crop"),
    "lsun-resize": ("LSUN_resize", "LSUN_R", "lsun-resize", "lsun_resize"),
    "isun": ("iSUN", "isun", "iSUN_patches"),
}
HINTS = {
    "textures": "unpack dtd-r1.0.1.tar.gz into --root (gives dtd/images/<class>/*.jpg)",
    "places365": "put Places365 images in --root/places365/ (any sub-folders)",
    "lsun-crop": "unpack LSUN.tar.gz (ODIN release) into --root (gives LSUN/test/*.jpg)",
    "lsun-resize": "unpack LSUN_resize.tar.gz (ODIN release) into --root (gives LSUN_resize/)",
    "isun": "unpack iSUN.tar.gz (ODIN release) into --root (gives iSUN/iSUN_patches/)",
}


def find_folder(name: str, root: Path | None) -> Path | None:
    bases = ([root] if root is not None else []) + [download_dir(None)]
    for base in bases:
        for rel in FOLDERS[name]:
            if (base / rel).is_dir():
                return base / rel
    return None


def read_folder(name: str, folder: Path, files: list[Path], size: int, classes: bool) -> ImageSet:
    """Decode ``files``; with ``classes`` the first sub-folder under ``folder`` is the label."""
    images, bad = [], []
    for path in files:
        try:
            images.append(read_rgb(path, size))
        except (OSError, ValueError):  # one damaged image is reported, not fatal
            bad.append(str(path.relative_to(folder)))
    skip = set(bad)
    kept = [p for p in files if str(p.relative_to(folder)) not in skip]
    names = sorted({p.relative_to(folder).parts[0] for p in kept}) if classes else []
    labels = [names.index(p.relative_to(folder).parts[0]) for p in kept] if classes else None
    meta = {"source": str(folder), "unreadable": bad, "classes": names, "size": size}
    stack = torch.stack(images) if images else np.zeros((0, 3, size, size))
    return make_set(name, stack, labels, len(names), meta)


def _download(name: str, target: Path) -> None:
    import torchvision.datasets as tvd

    if name == "textures":
        for split in ("train", "val", "test"):
            tvd.DTD(str(target), split=split, download=True)
    elif name == "places365":
        tvd.Places365(str(target), split="val", small=True, download=True)
    else:
        raise UserError(f"{name} cannot be downloaded by oodbench: {HINTS[name]}")


def _loader(name: str, classes: bool, downloadable: bool) -> Callable[[LoadRequest], ImageSet]:
    def load(req: LoadRequest) -> ImageSet:
        check_split(name, req.split, ("test",))
        folder = find_folder(name, req.root)
        if folder is None and req.download and downloadable:
            _download(name, download_dir(req.root))
            folder = find_folder(name, req.root)
        if folder is None:
            tail = ", or pass --download" if downloadable else ""
            raise UserError(
                f"{name} not found under {req.root or '--root (not given)'}: {HINTS[name]}{tail}"
            )
        files = find_images(folder)
        if not files:
            raise UserError(f"{name}: no images in {folder}; {HINTS[name]}")
        size = req.geometry[1] if req.geometry else SIZE
        identity = {"files": file_identity(files), "size": size}
        return cached(
            name, req.split, identity, lambda: read_folder(name, folder, files, size, classes)
        )

    return load


for _name, _kind, _classes, _src in (
    ("textures", "download", 47, "DTD via torchvision (dtd/images/<class>/), all 5,640 images"),
    ("places365", "download", 0, "Places365 val_256 via torchvision, or an image folder"),
    ("lsun-crop", "folder", 0, "image folder --root/LSUN (ODIN release)"),
    ("lsun-resize", "folder", 0, "image folder --root/LSUN_resize (ODIN release)"),
    ("isun", "folder", 0, "image folder --root/iSUN (ODIN release)"),
):
    register(
        DatasetSpec(
            name=_name,
            kind=_kind,
            geometry=f"3x{SIZE}x{SIZE} (resized)",
            num_classes=_classes,
            source=_src,
            splits=("test",),
            loader=_loader(_name, _classes > 0, _kind == "download"),
            available=lambda root, n=_name: find_folder(n, root) is not None,
        )
    )
