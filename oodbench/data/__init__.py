"""Datasets as ImageSets: ``load(name, split)`` and the registry behind ``oodbench datasets``."""

from __future__ import annotations

from pathlib import Path

from oodbench.data import sources  # noqa: F401  (registers every source)
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import DATASETS, DatasetSpec, LoadRequest

__all__ = ["DATASETS", "DatasetSpec", "ImageSet", "LoadRequest", "load"]


def load(
    name: str,
    split: str = "test",
    root: str | Path | None = None,
    download: bool = False,
    geometry: tuple[int, int, int] | None = None,
) -> ImageSet:
    """Load a registered dataset split as an ImageSet (``geometry`` only for synthetic sets)."""
    spec = DATASETS.get(name)
    req = LoadRequest(
        split=split, root=Path(root) if root else None, download=download, geometry=geometry
    )
    return spec.loader(req)
