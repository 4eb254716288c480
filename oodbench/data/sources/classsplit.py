"""The near-OOD track: Fashion-MNIST split into known (ID) and unknown (near-OOD) classes.

In the style of open-set recognition (Neal et al., ECCV 2018: 6 known / 4 unknown classes), a
model trains on the known classes only; the *test* images of the unknown classes are the near-OOD
test set, and their *training* images (never seen in training, disjoint images from the test
ones) are the near-OOD validation set used for choices (tau, detector hyperparameters).

The default split holds out one class next to each of three known ones, so every unknown class
has a look-alike among the known ones, which is what makes it *near*:

    known   T-shirt/top(0) Trouser(1) Pullover(2) Dress(3) Sandal(5) Bag(8)
    unknown Coat(4) ~ Pullover, Shirt(6) ~ T-shirt, Sneaker(7) ~ Sandal, Ankle boot(9) ~ Sandal

Seeded random splits (``-s1`` .. ``-s3``) draw 4 unknown classes with ``torch.Generator`` for
multi-split studies. Known labels are remapped to 0..5 in ascending class order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from oodbench.data.imageset import ImageSet
from oodbench.data.registry import DATASETS, DatasetSpec, LoadRequest, check_split, register
from oodbench.data.split import derive_seed

BASE = "fashion-mnist"
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DEFAULT_UNKNOWN = (4, 6, 7, 9)
SPLIT_SEEDS = (1, 2, 3)


def unknown_classes(seed: int | None) -> tuple[int, ...]:
    """The 4 held-out classes: the documented default (seed None) or a seeded random draw."""
    if seed is None:
        return DEFAULT_UNKNOWN
    g = torch.Generator().manual_seed(seed)
    return tuple(sorted(torch.randperm(len(CLASSES), generator=g)[:4].tolist()))


def known_set(base: ImageSet, unknown: tuple[int, ...], name: str) -> ImageSet:
    known = [c for c in range(base.num_classes) if c not in unknown]
    keep = torch.isin(base.labels, torch.tensor(known))
    remap = torch.full((base.num_classes,), -1, dtype=torch.int64)
    remap[torch.tensor(known)] = torch.arange(len(known))
    meta = {**base.meta, "known_classes": known, "unknown_classes": list(unknown)}
    return ImageSet(
        images=base.images[keep],
        labels=remap[base.labels[keep]],
        name=name,
        num_classes=len(known),
        mean=base.mean,
        std=base.std,
        meta=meta,
    )


def unknown_set(base: ImageSet, unknown: tuple[int, ...], name: str) -> ImageSet:
    keep = torch.isin(base.labels, torch.tensor(unknown))
    images = base.images[keep]
    meta = {**base.meta, "unknown_classes": list(unknown)}
    labels = torch.full((images.shape[0],), -1, dtype=torch.int64)
    return ImageSet(images, labels, name, 0, base.mean, base.std, meta)


def _load_base(req: LoadRequest, split: str) -> ImageSet:
    return DATASETS.get(BASE).loader(LoadRequest(split, req.root, req.download))


def available(root: Path | None) -> bool:
    return DATASETS.get(BASE).available(root)


def register_class_split(
    base: str,
    classes: Sequence[str],
    unknown: tuple[int, ...],
    geometry: str,
    load_base: Callable[[LoadRequest, str], ImageSet],
    is_available: Callable[[Path | None], bool],
    suffix: str = "",
    slow_build: bool = False,
    title: str = "",
    install: str = "",
) -> str:
    """Register ``<base>-known<K>`` (ID, train/test) and its near-OOD sets ``<base>-unknown<U>``
    (the test images of ``unknown``) and ``-val`` (their training images); return the ID name.
    ``load_base(req, split)`` loads the full ID set's ``split``."""
    names = ", ".join(classes[c] for c in unknown)
    k, u = len(classes) - len(unknown), len(unknown)
    id_name, ood_name = f"{base}-known{k}{suffix}", f"{base}-unknown{u}{suffix}"

    def load_known(req: LoadRequest) -> ImageSet:
        check_split(id_name, req.split, ("train", "test"))
        return known_set(load_base(req, req.split), unknown, id_name)

    def load_unknown(split: str, name: str) -> Callable[[LoadRequest], ImageSet]:
        def load(req: LoadRequest) -> ImageSet:
            check_split(name, req.split, ("test",))
            return unknown_set(load_base(req, split), unknown, name)

        return load

    register(
        DatasetSpec(
            name=id_name,
            kind="offline",
            geometry=geometry,
            num_classes=k,
            source=f"{title or base} without {names} (near-OOD track ID set)",
            splits=("train", "test"),
            loader=load_known,
            available=is_available,
            role="id",
            slow_build=slow_build,
            install=install,
        )
    )
    for name, split, role, what in (
        (ood_name, "test", "test", "test images"),
        (f"{ood_name}-val", "train", "validation", "training images"),
    ):
        register(
            DatasetSpec(
                name=name,
                kind="offline",
                geometry=geometry,
                num_classes=0,
                source=f"{title or base} {what} of {names} (near-OOD, pairs with {id_name})",
                splits=("test",),
                loader=load_unknown(split, name),
                available=is_available,
                ood_role=role,
                near_of=id_name,
                slow_build=slow_build,
                install=install,
            )
        )
    return id_name


def register_grouped_id_set(
    name: str,
    *,
    geometry: str,
    classes: Sequence[str],
    unknown: Sequence[str],
    source: str,
    size: str,
    split: Callable[[Path | None, str], ImageSet],
    available: Callable[[Path | None], bool],
    install: str,
) -> None:
    """An ID set built whole from installed packages and split by group (``split(root,
    split)``), with its near-OOD class split: the icons and alnum settings."""

    def load(req: LoadRequest) -> ImageSet:
        check_split(name, req.split, ("train", "test"))
        return split(req.root, req.split)

    register(DatasetSpec(
        name=name, kind="offline", geometry=geometry, num_classes=len(classes), source=source,
        splits=("train", "test"), loader=load, available=available, role="id",
        slow_build=True, install=install, size=size,
    ))  # fmt: skip
    register_class_split(
        name, classes, unknown, geometry, lambda req, s: split(req.root, s), available,
        slow_build=True, install=install,
    )  # fmt: skip


def _register(suffix: str, seed: int | None) -> None:
    register_class_split(
        BASE,
        CLASSES,
        unknown_classes(seed),
        "1x28x28",
        _load_base,
        available,
        suffix,
        title="Fashion-MNIST",
    )


_register("", None)
for _seed in SPLIT_SEEDS:
    _register(f"-s{_seed}", _seed)


def stored_order(data: ImageSet, split: str) -> ImageSet:
    """``data`` in a fixed shuffled order, seeded by its name and split. A built set comes out
    class by class (icons-ctx8) or font by font (alnum-fonts), and ``--subset N`` and the
    per-epoch test pass read the first N images, which must be a fair sample of the split, as
    in Fashion-MNIST's files (which come shuffled)."""
    g = torch.Generator().manual_seed(derive_seed(data.name, split, "stored-order"))
    return data.subset(torch.randperm(len(data), generator=g))
