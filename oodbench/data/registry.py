"""The dataset registry: one DatasetSpec per name, shown by ``oodbench datasets``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from oodbench.data.imageset import ImageSet
from oodbench.registry import Registry

KINDS = ("offline", "download", "folder", "synthetic")


@dataclass(frozen=True)
class LoadRequest:
    """What a source's loader receives. ``geometry`` (C, H, W) is used by synthetic sources."""

    split: str
    root: Path | None
    download: bool
    geometry: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str  # one of KINDS
    geometry: str  # e.g. "1x28x28", or "ID geometry" for synthetic sets
    num_classes: int  # 0 for OOD-only sets without classes
    source: str  # where the data comes from, for humans
    splits: tuple[str, ...]
    loader: Callable[[LoadRequest], ImageSet]
    available: Callable[[Path | None], bool]  # available on this machine now (given --root)
    role: str = "ood"  # "id" when it can be an ID training set (it also serves as OOD), else "ood"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"dataset kind must be one of {KINDS}, got {self.kind!r}")


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register(spec: DatasetSpec) -> DatasetSpec:
    DATASETS.add(spec.name, spec)
    return spec
