"""Datasets as ImageSets: ``load``, ``adapt`` and the registry behind ``oodbench datasets``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oodbench.data import sources  # noqa: F401  (registers every source)
from oodbench.data.adapt import adapt
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import DATASETS, DatasetSpec, LoadRequest
from oodbench.data.sources.shifted import sample_indices, shifted_sets

__all__ = ["DATASETS", "OFFLINE_OOD", "OFFLINE_VAL", "VAL_GROUPS", "DatasetSpec", "ImageSet",
           "LoadRequest", "adapt", "load", "ood_role", "sample_indices",
           "shifted_sets"]  # fmt: skip

# The OOD sets every machine with `make data` has: the benchmark that runs offline. These are
# the test sets; the validation sets below share no source with them (data/holdout.py).
OFFLINE_OOD = ("mnist-5k", "notmnist-fonts", "world-scripts", "textures-openarena")
NOISE_VAL = ("gaussian", "uniform")
REAL_VAL = ("notmnist-fonts-val", "world-scripts-val", "textures-openarena-val")
OFFLINE_VAL = NOISE_VAL + REAL_VAL
# --val-ood shorthands: the paper's noise, held-out real images, or both.
VAL_GROUPS: dict[str, tuple[str, ...]] = {"noise": NOISE_VAL, "real": REAL_VAL,
                                          "noise+real": OFFLINE_VAL}  # fmt: skip


def ood_role(name: str) -> str:
    """ "validation" or "test": what a registered set is for in a benchmark."""
    return DATASETS.get(name).ood_role


def load(
    name: str,
    split: str = "test",
    root: str | Path | None = None,
    download: bool = False,
    geometry: tuple[int, int, int] | None = None,
    preprocess: dict[str, Any] | None = None,
) -> ImageSet:
    """Load a registered dataset split (or ``folder:PATH``, an image folder) as an ImageSet.

    ``geometry`` (C, H, W) makes synthetic sets generate at that geometry and image-folder sets
    decode at H x W; other sources ignore it (use ``adapt`` to match an ID set).
    ``preprocess`` (``interpolation``, ``crop_pct``: timm's data config) says how image files
    are resized to ``geometry``.
    """
    spec = DATASETS.get(name)
    req = LoadRequest(
        split=split,
        root=Path(root).expanduser() if root else None,
        download=download,
        geometry=geometry,
        preprocess=preprocess,
    )
    return spec.loader(req)
