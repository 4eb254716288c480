"""CIFAR-10, CIFAR-100 and SVHN in their released on-disk formats (torchvision's layouts).

torchvision's dataset classes verify MD5 sums of the whole release before reading, so they are
used only to download (``--download``). Reading parses the same files directly: CIFAR's pickled
batches (``cifar-10-batches-py``, ``cifar-100-python``) and SVHN's ``<split>_32x32.mat``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from oodbench.data.cache import cached, download_dir, file_identity
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import DatasetSpec, LoadRequest, check_split, register
from oodbench.data.sources.common import make_set
from oodbench.errors import UserError

CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
SVHN_STATS = ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))


def _search(root: Path | None) -> list[Path]:
    dirs = [root, root / "cifar", root / "svhn", root / "SVHN"] if root is not None else []
    return [*dirs, download_dir(None)]


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            # latin1 decodes the Python-2 pickles of the original release, as torchvision does.
            return pickle.load(fh, encoding="latin1")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}; replace the file or pass --download") from exc


def _read_cifar(
    name: str, files: list[Path], label_key: str, classes: int, stats: tuple
) -> ImageSet:
    images, labels = [], []
    for path in files:
        batch = _unpickle(path)
        if "data" not in batch or label_key not in batch:
            raise UserError(f"{path} is not a CIFAR batch (no 'data'/{label_key!r}); replace it")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    meta = {"source": str(files[0].parent), "files": [p.name for p in files]}
    return make_set(name, np.concatenate(images), np.concatenate(labels), classes, meta, *stats)


def _read_svhn(path: Path) -> ImageSet:
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
        x, y = mat["X"], mat["y"].astype(np.int64).reshape(-1)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read {path}: {exc}; replace the file or pass --download") from exc
    y[y == 10] = 0  # the release labels digit 0 as 10
    meta = {"source": str(path)}
    return make_set("svhn", x.transpose(3, 2, 0, 1), y, 10, meta, *SVHN_STATS)


def _files_for(name: str, split: str, folder: Path) -> list[Path] | None:
    if name == "cifar10":
        stems = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
        base = folder / "cifar-10-batches-py"
    elif name == "cifar100":
        stems, base = [split], folder / "cifar-100-python"
    else:
        stems, base = [f"{split}_32x32.mat"], folder
    files = [base / s for s in stems]
    return files if all(f.is_file() for f in files) else None


_LAYOUT = {
    "cifar10": "cifar-10-batches-py/",
    "cifar100": "cifar-100-python/",
    "svhn": "{split}_32x32.mat",
}


def _download(name: str, split: str, target: Path) -> None:
    import torchvision.datasets as tvd

    if name == "svhn":
        tvd.SVHN(str(target), split=split, download=True)
    else:
        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        cls(str(target), train=split == "train", download=True)


def _loader(name: str, splits: tuple[str, ...], read: Callable[[list[Path]], ImageSet]):
    def load(req: LoadRequest) -> ImageSet:
        check_split(name, req.split, splits)
        files = next(
            filter(None, (_files_for(name, req.split, d) for d in _search(req.root))), None
        )
        if files is None and req.download:
            _download(name, req.split, download_dir(req.root))
            files = _files_for(name, req.split, download_dir(req.root))
        if files is None:
            where = req.root or "a folder passed as --root"
            layout = _LAYOUT[name].format(split=req.split)
            raise UserError(
                f"{name} {req.split!r} not found: put {layout} in {where}, or pass --download"
            )
        return cached(name, req.split, file_identity(files), lambda: read(files))

    return load


def _available(name: str) -> Callable[[Path | None], bool]:
    return lambda root: any(_files_for(name, "test", d) for d in _search(root))


for _name, _classes, _stats, _key, _src in (
    ("cifar10", 10, CIFAR10_STATS, "labels", "torchvision CIFAR10 (cifar-10-batches-py)"),
    ("cifar100", 100, CIFAR100_STATS, "fine_labels", "torchvision CIFAR100 (cifar-100-python)"),
):
    register(
        DatasetSpec(
            name=_name,
            kind="download",
            geometry="3x32x32",
            num_classes=_classes,
            source=_src,
            splits=("train", "test"),
            loader=_loader(
                _name,
                ("train", "test"),
                lambda f, n=_name, k=_key, c=_classes, s=_stats: _read_cifar(n, f, k, c, s),
            ),
            available=_available(_name),
            role="id",
        )
    )

register(
    DatasetSpec(
        name="svhn",
        kind="download",
        geometry="3x32x32",
        num_classes=10,
        source="torchvision SVHN ({train,test,extra}_32x32.mat)",
        splits=("train", "test", "extra"),
        loader=_loader("svhn", ("train", "test", "extra"), lambda f: _read_svhn(f[0])),
        available=_available("svhn"),
        role="id",
    )
)
