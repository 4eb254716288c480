"""The dataset registry: one DatasetSpec per name, shown by ``oodbench datasets``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from oodbench.data.cache import cached
from oodbench.data.imageset import ImageSet
from oodbench.errors import UserError
from oodbench.registry import Registry

Found = TypeVar("Found")

KINDS = ("offline", "download", "folder", "synthetic", "shifted")
# What an OOD set is for in a benchmark: a choice (tau, a hyperparameter, a headline's best
# detector) reads "validation" sets only; averages and verdicts read "test" sets only.
OOD_ROLES = ("test", "validation")
# "id": can be trained on (and serves as OOD for other ID sets); "ood": an OOD set; "shifted":
# a corrupted copy of an ID test set, scored as ID under shift, never offered as OOD.
ROLES = ("id", "ood", "shifted")


@dataclass(frozen=True)
class LoadRequest:
    """What a source's loader receives. ``geometry`` (C, H, W) is used by synthetic sources."""

    split: str
    root: Path | None
    download: bool
    geometry: tuple[int, int, int] | None = None
    # How image files are brought to ``geometry`` (folder sets): interpolation, crop_pct, as
    # timm's resolve_data_config gives them; None = bilinear resize of the shorter side + crop.
    preprocess: dict[str, Any] | None = None


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
    ood_role: str = "test"  # one of OOD_ROLES: never both
    near_of: str | None = None  # the ID set whose held-out classes these are (near-OOD track)
    # A covariate-shifted copy of an ID test set (kind "shifted", role "shifted": ID images,
    # labels kept, never an OOD set): its corruption (data/corruptions.py) and severity 1..5.
    corruption: str | None = None
    severity: int | None = None
    # Its first build takes minutes (rendering thousands of files): the default test suite
    # builds it from a tiny fixture tree instead, a slow test from the installed packages.
    slow_build: bool = False
    size: str = ""  # images per split as measured on a full build, for the listing
    install: str = ""  # how to get it when missing, e.g. "run 'make data' (apt-get install X)"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"dataset kind must be one of {KINDS}, got {self.kind!r}")
        if self.role not in ROLES:
            raise ValueError(f"dataset role must be one of {ROLES}, got {self.role!r}")
        if self.ood_role not in OOD_ROLES:
            raise ValueError(f"ood_role must be one of {OOD_ROLES}, got {self.ood_role!r}")


class DatasetRegistry(Registry[DatasetSpec]):
    """The registry, plus names made on demand: ``scheme:ARG`` (``folder:PATH``) is built by
    the factory a source registered for ``scheme`` (``DATASETS.schemes``)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.schemes: dict[str, Callable[[str], DatasetSpec]] = {}

    def get(self, name: str) -> DatasetSpec:
        scheme, sep, arg = name.partition(":")
        if sep and scheme in self.schemes and name not in self:
            return self.schemes[scheme](arg)
        return super().get(name)


DATASETS = DatasetRegistry("dataset")


def register(spec: DatasetSpec) -> DatasetSpec:
    DATASETS.add(spec.name, spec)
    return spec


def check_split(name: str, split: str, splits: Sequence[str]) -> None:
    if split not in splits:
        raise UserError(f"{name} has split(s) {', '.join(map(repr, splits))}, not {split!r}")


def register_found(
    name: str,
    *,
    geometry: str,
    num_classes: int,
    source: str,
    find: Callable[[Path | None], Found | None],
    missing: str,
    identity: Callable[[Found], dict[str, Any]],
    build: Callable[[Found], ImageSet],
    available: Callable[[Path | None], bool] | None = None,
    ood_role: str = "test",
) -> DatasetSpec:
    """Register an offline OOD set (one split, "test") built from files found on this machine.

    ``find(root)`` returns what to build from (falsy when absent: ``missing`` says how to get
    it); the build is cached under ``identity`` of what was found. ``available`` defaults to
    "``find`` finds something".
    """

    def load(req: LoadRequest) -> ImageSet:
        check_split(name, req.split, ("test",))
        found = find(req.root)
        if not found:
            raise UserError(missing)
        return cached(name, req.split, identity(found), lambda: build(found))

    return register(
        DatasetSpec(
            name=name,
            kind="offline",
            geometry=geometry,
            num_classes=num_classes,
            source=source,
            splits=("test",),
            loader=load,
            available=available or (lambda root: bool(find(root))),
            ood_role=ood_role,
        )
    )
