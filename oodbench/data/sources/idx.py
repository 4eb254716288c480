"""IDX-format sources: Fashion-MNIST (Debian ``dataset-fashion-mnist``) and MNIST (download).

Both look in ``--root`` (also ``--root/<name>`` and torchvision's ``--root/<Class>/raw``), then
in the download dir (``$OODBENCH_CACHE/downloads``), then in the system dir.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from oodbench.data.cache import cached, download_dir, file_identity
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import DatasetSpec, LoadRequest, check_split, register
from oodbench.errors import UserError

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
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


def _dirs(root: Path | None, names: tuple[str, ...], system: Path | None) -> list[Path]:
    dirs = [root] + [root / n for n in names] if root is not None else []
    dirs.append(download_dir(None))
    dirs += [download_dir(None) / n for n in names]
    return dirs + ([system] if system else [])


def _idx_loader(
    name: str,
    names: tuple[str, ...],
    system: Path | None,
    tv_class: str,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    install: str,
):
    """A loader for an IDX dataset looked up in ``--root``, the download dir and ``system``."""

    def load(req: LoadRequest) -> ImageSet:
        check_split(name, req.split, tuple(_IDX_FILES))
        dirs = _dirs(req.root, names, system)
        folder = next((d for d in dirs if idx_pair(d, req.split)), None)
        if folder is None and req.download:
            import torchvision.datasets as tvd

            target = download_dir(req.root)
            getattr(tvd, tv_class)(str(target), train=req.split == "train", download=True)
            folder = target / tv_class / "raw"
        if folder is None:
            where = req.root / names[-1] if req.root else "a folder passed as --root"
            raise UserError(
                f"{name} not found: {install}put the IDX files "
                f"({_IDX_FILES[req.split]}-images-idx3-ubyte[.gz], ...) in {where}, "
                "or pass --download"
            )
        pair = idx_pair(folder, req.split)
        assert pair is not None
        return cached(
            name,
            req.split,
            file_identity(pair),
            lambda: load_idx_imageset(folder, req.split, name, mean, std),
        )

    return load


# name, folder names under --root / the download dir, system dir, torchvision class, stats,
# install hint, source
for _name, _names, _system, _tv, _stats, _install, _src in (
    ("fashion-mnist", ("fashion-mnist", "FashionMNIST/raw"), FASHION_MNIST_SYSTEM_DIR,
     "FashionMNIST", (FASHION_MNIST_MEAN, FASHION_MNIST_STD),
     "run 'apt-get install dataset-fashion-mnist' (or 'make data'), ",
     "Debian dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), MIT"),
    ("mnist", ("mnist", "MNIST/raw"), None, "MNIST", (MNIST_MEAN, MNIST_STD), "",
     "torchvision MNIST (IDX files in --root/MNIST/raw), CC BY-SA 3.0"),
):  # fmt: skip
    register(
        DatasetSpec(
            name=_name,
            kind="offline" if _system else "download",
            geometry="1x28x28",
            num_classes=10,
            source=_src,
            splits=("train", "test"),
            loader=_idx_loader(_name, _names, _system, _tv, *_stats, _install),
            available=lambda root, n=_names, d=_system: any(
                idx_pair(f, "test") for f in _dirs(root, n, d)
            ),
            role="id",
        )
    )
