"""IDX-format sources: Fashion-MNIST (Debian ``dataset-fashion-mnist``) and MNIST (download)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from oodbench.data.imageset import ImageSet
from oodbench.data.registry import DatasetSpec, LoadRequest, register
from oodbench.errors import UserError

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
_IDX_FILES = {"train": "train", "test": "t10k"}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped) into a numpy array, checking its header."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise UserError(
            f"cannot read IDX file {path}: {exc}; re-install or re-download it"
        ) from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError(f"{path} is not an unsigned-byte IDX file (bad magic); replace the file")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise UserError(
            f"{path} is truncated or corrupt: header says {expected} bytes, found "
            f"{len(data) - header}; replace the file"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def idx_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    prefix = _IDX_FILES[split]
    images = _find_idx(folder, f"{prefix}-images-idx3-ubyte")
    labels = _find_idx(folder, f"{prefix}-labels-idx1-ubyte")
    return (images, labels) if images and labels else None


def load_idx_imageset(
    folder: Path, split: str, name: str, mean: tuple[float, ...], std: tuple[float, ...]
) -> ImageSet:
    pair = idx_pair(folder, split)
    if pair is None:
        raise UserError(f"no {name} IDX files for split {split!r} in {folder}")
    images, labels = read_idx(pair[0]), read_idx(pair[1])
    if images.shape[0] != labels.shape[0]:
        raise UserError(f"{name}: {pair[0]} and {pair[1]} hold different numbers of samples")
    return ImageSet(
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        name=name,
        num_classes=10,
        mean=mean,
        std=std,
        meta={"source": str(pair[0].parent), "split": split},
    )


def _fashion_dirs(root: Path | None) -> list[Path]:
    dirs = []
    if root is not None:
        dirs += [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    return dirs + [FASHION_MNIST_SYSTEM_DIR]


def _load_fashion(req: LoadRequest) -> ImageSet:
    if req.split not in _IDX_FILES:
        raise UserError(f"fashion-mnist has splits 'train' and 'test', not {req.split!r}")
    for folder in _fashion_dirs(req.root):
        if idx_pair(folder, req.split):
            return load_idx_imageset(
                folder, req.split, "fashion-mnist", FASHION_MNIST_MEAN, FASHION_MNIST_STD
            )
    if req.download:
        from torchvision.datasets import FashionMNIST

        target = req.root or Path.home() / ".cache" / "oodbench" / "downloads"
        FashionMNIST(str(target), train=req.split == "train", download=True)
        return load_idx_imageset(
            target / "FashionMNIST" / "raw",
            req.split,
            "fashion-mnist",
            FASHION_MNIST_MEAN,
            FASHION_MNIST_STD,
        )
    raise UserError(
        "fashion-mnist not found: run 'apt-get install dataset-fashion-mnist' (or 'make data'), "
        "put the IDX files under --root, or pass --download"
    )


register(
    DatasetSpec(
        name="fashion-mnist",
        kind="offline",
        geometry="1x28x28",
        num_classes=10,
        source="Debian dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), MIT",
        splits=("train", "test"),
        loader=_load_fashion,
        available=lambda root: any(idx_pair(d, "test") for d in _fashion_dirs(root)),
        role="id",
    )
)
