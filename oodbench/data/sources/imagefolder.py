"""``folder:PATH``: your own image folder as a dataset, ID or OOD.

- ID (torchvision's ImageFolder layout): ``PATH/train/<class>/...`` and ``PATH/test/<class>/...``.
  Without ``test/`` a seeded split keeps one image in ``TEST_EVERY`` of ``train/`` for ``test``,
  chosen by a hash of its path, so adding images never moves the others. Classes are the
  sorted sub-folder names of ``train/``; an empty class folder is an error.
- OOD (no ``train/``): every image under ``PATH``, recursively, no labels.

Images are decoded with torchvision (``decode_image``: PNG, JPEG, GIF, WebP, ...; Pillow for the
rest). With a geometry (C, H, W), from the model, each image is resized and centre-cropped like
timm's eval transform (shorter side to H / crop_pct, then crop); without one every image must
have the first one's size. An unreadable image, or one of another size, stops with an error
naming the file.

The decoded set is stored as uint8 ``.npy`` files in the dataset cache and memory-mapped
(copy-on-write), so a set larger than memory is read a batch at a time: peak memory stays
bounded by the batch, not the set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench.data.cache import cache_dir, file_identity
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import DATASETS, DatasetSpec, LoadRequest, check_split
from oodbench.data.sources.common import IMAGE_SUFFIXES
from oodbench.errors import UserError
from oodbench.io import file_lock

SCHEME = "folder"
TEST_EVERY = 5  # the seeded split without test/: 1 image in 5 is a test image
FORMAT_VERSION = 1
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")  # torchvision's InterpolationMode values


def _images(folder: Path) -> list[Path]:
    files = (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(p for p in files if p.is_file())


def class_root(path: Path) -> Path | None:
    """``PATH/train`` when it holds class sub-folders (an ID folder), else None (OOD)."""
    root = path / "train"
    return root if root.is_dir() and any(d.is_dir() for d in root.iterdir()) else None


def _in_test(rel: str) -> bool:
    return int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16) % TEST_EVERY == 0


def labelled_files(path: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    """(files, labels, class names) of an ID folder's split."""
    root = class_root(path)
    if root is None:
        raise UserError(
            f"folder:{path} has no train/<class>/ sub-folders; an ID folder needs "
            f"{path}/train/<class>/<image> (and optionally {path}/test/<class>/<image>)"
        )
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    test_dir = path / "test"
    split_dir = test_dir if split == "test" and test_dir.is_dir() else root
    files, labels = [], []
    for label, name in enumerate(classes):
        found = _images(split_dir / name) if (split_dir / name).is_dir() else []
        if split_dir == root:
            if not found:
                raise UserError(f"folder:{path}: class folder {split_dir / name} has no images")
            if not test_dir.is_dir():  # the seeded split: each file's side is fixed by its path
                found = [
                    p for p in found if _in_test(str(p.relative_to(root))) == (split == "test")
                ]
        files += found
        labels += [label] * len(found)
    if split_dir == test_dir:
        extra = sorted(d.name for d in test_dir.iterdir() if d.is_dir() and d.name not in classes)
        if extra:
            raise UserError(f"folder:{path}: test/ has classes not in train: {', '.join(extra)}")
    if not files:
        raise UserError(f"folder:{path}: no images for split {split!r}")
    return files, labels, classes


def decode(path: Path, channels: int | None, size: tuple[int, int] | None,
           preprocess: dict[str, Any] | None) -> torch.Tensor:  # fmt: skip
    """One file as uint8 C x H x W: RGB (or grey when ``channels`` is 1), resized like timm's
    eval transform when ``size`` is given. Errors name the file."""
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2 import functional as TF

    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    try:
        img = decode_image(str(path), mode=mode)
    except (RuntimeError, ValueError, OSError):
        img = _decode_pil(path, channels)  # TGA, BMP...: formats torchvision leaves to Pillow
    if size is None:
        return img
    pre = preprocess or {}
    crop_pct = float(pre.get("crop_pct") or 1.0)
    name = str(pre.get("interpolation", "bilinear"))
    interpolation = TF.InterpolationMode(name if name in INTERPOLATIONS else "bilinear")
    scale = [int(s / crop_pct) for s in size] if size[0] != size[1] else int(size[0] / crop_pct)
    if img.shape[-2:] != tuple(size) or crop_pct != 1.0:
        img = TF.resize(img, scale, interpolation=interpolation, antialias=True)
        img = TF.center_crop(img, list(size))
    return img


def _decode_pil(path: Path, channels: int | None) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read image {path}: {str(exc).splitlines()[0]}") from None
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _build(dest: Path, files: list[Path], labels: list[int] | None, req: LoadRequest) -> None:
    """Decode ``files`` one at a time into ``dest``/images.npy (a memory map): nothing holds
    more than one image in memory."""
    geometry = req.geometry
    channels = geometry[0] if geometry else None
    size = (geometry[1], geometry[2]) if geometry else None
    first = decode(files[0], channels, size, req.preprocess)
    shape = (len(files), *first.shape)
    images = np.lib.format.open_memmap(dest / "images.npy", "w+", np.uint8, shape)
    for i, path in enumerate(files):
        img = first if i == 0 else decode(path, shape[1], size, req.preprocess)
        if tuple(img.shape) != shape[1:]:
            raise UserError(
                f"image {path} is {img.shape[2]}x{img.shape[1]}, but {files[0]} is "
                f"{shape[3]}x{shape[2]}; resize the folder's images to one size"
            )
        images[i] = img.numpy()
    images.flush()
    del images
    np.save(dest / "labels.npy", np.asarray(labels if labels else [-1] * len(files), np.int64))


def _open(dest: Path, name: str, meta: dict[str, Any]) -> ImageSet:
    images = torch.from_numpy(np.load(dest / "images.npy", mmap_mode="c"))
    labels = torch.from_numpy(np.load(dest / "labels.npy"))
    info = json.loads((dest / "meta.json").read_text())
    return ImageSet(images=images, labels=labels, name=name, num_classes=info["num_classes"],
                    mean=tuple(info["mean"]), std=tuple(info["std"]),
                    meta={**meta, **info["meta"], "cache": str(dest)})  # fmt: skip


def _stats(images: np.ndarray, most: int = 256, chunk: int = 16) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (in [0, 1] units) over an evenly strided sample of at most
    ``most`` images, read ``chunk`` images at a time: memory stays a few MB for any set."""
    pick = np.arange(0, len(images), max(1, len(images) // most))[:most]
    total = np.zeros(images.shape[1])
    squares = np.zeros(images.shape[1])
    for start in range(0, len(pick), chunk):
        x = images[pick[start : start + chunk]].astype(np.float64) / 255
        total += x.sum(axis=(0, 2, 3))
        squares += (x * x).sum(axis=(0, 2, 3))
    n = len(pick) * images.shape[2] * images.shape[3]
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0)).clip(min=1e-3)
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]


def materialise(name: str, files: list[Path], labels: list[int] | None, num_classes: int,
                req: LoadRequest, meta: dict[str, Any]) -> ImageSet:  # fmt: skip
    """The memory-mapped set, decoded into the cache on the first call (under a lock)."""
    key = json.dumps(
        {"files": file_identity(files), "labels": labels, "geometry": req.geometry,
         "preprocess": req.preprocess, "version": FORMAT_VERSION},
        sort_keys=True, default=str,
    )  # fmt: skip
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    dest = cache_dir() / "datasets" / f"folder-{req.split}-{digest}"
    if (dest / "meta.json").is_file():
        return _open(dest, name, meta)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(dest):
        if (dest / "meta.json").is_file():
            return _open(dest, name, meta)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            _build(tmp, files, labels, req)
            mean, std = _stats(np.load(tmp / "images.npy", mmap_mode="r"))
            info = {"num_classes": num_classes, "mean": mean, "std": std,
                    "meta": {"n": len(files)}}  # fmt: skip
            (tmp / "meta.json").write_text(json.dumps(info))
            os.replace(tmp, dest)  # the entry appears whole or not at all
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _open(dest, name, meta)


def folder_spec(arg: str) -> DatasetSpec:
    """The DatasetSpec of ``folder:PATH``: ID when PATH has class sub-folders, else OOD."""
    name = f"{SCHEME}:{arg}"
    path = Path(arg).expanduser()
    if not arg:
        raise UserError("folder: needs a path, e.g. --ood folder:data/my_ood_images")
    if not path.is_dir():
        raise UserError(f"{name}: {path} is not a folder of images")
    is_id = class_root(path) is not None

    def load(req: LoadRequest) -> ImageSet:
        check_split(name, req.split, ("train", "test") if is_id else ("test",))
        meta = {"source": str(path.resolve()), "unreadable": []}
        if is_id:
            files, labels, classes = labelled_files(path, req.split)
            meta["classes"] = classes
            return materialise(name, files, labels, len(classes), req, meta)
        files = _images(path)
        if not files:
            raise UserError(f"{name}: no images ({', '.join(IMAGE_SUFFIXES)}) under {path}")
        return materialise(name, files, None, 0, req, meta)

    return DatasetSpec(
        name=name, kind="folder", geometry="the model's (or the images')",
        num_classes=len(labelled_files(path, "train")[2]) if is_id else 0,
        source=f"image folder {path}", splits=("train", "test") if is_id else ("test",),
        loader=load, available=lambda root: path.is_dir(), role="id" if is_id else "ood",
    )  # fmt: skip


DATASETS.schemes[SCHEME] = folder_spec
