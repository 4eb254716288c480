"""The covariate-shifted ID track: corrupted copies of an ID set's test split.

``<id>-c:<corruption>:<severity>`` (``fashion-mnist-c:gaussian_noise:3``) is the test split of
the ID set ``<id>`` with one corruption of ``data/corruptions.py`` at severity 1..5, labels
kept: the images are ID images under a covariate shift (CIFAR-10-C, Hendrycks & Dietterich
2019; MNIST-C, Mu & Gilmer 2019), never an OOD set. The names are made on demand by a scheme
per ID set (``<id>-c``, as ``folder:PATH``), so the registry and its error messages do not grow
by 60 names per ID set; ``shifted_sets(id)`` lists them. Each set is built once and cached
under the ID test set's checksum, the corruption's parameters and the seed.
"""

from __future__ import annotations

import hashlib

from oodbench.data import corruptions
from oodbench.data.cache import cached
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import DATASETS, DatasetSpec, LoadRequest, check_split
from oodbench.errors import UserError

SUFFIX = "-c"  # fashion-mnist -> fashion-mnist-c, as MNIST-C and CIFAR-10-C are named
# Bump when a corruption's output changes for the same parameters (a new implementation).
VERSION = 2  # 2: a Philox stream per image, PIL JPEG


def shifted_name(id_name: str, corruption: str, severity: int) -> str:
    return f"{id_name}{SUFFIX}:{corruption}:{severity}"


def shifted_sets(id_name: str) -> list[str]:
    """The shifted sets of ID set ``id_name``: every corruption at every severity, corruption
    by corruption. Empty for an ID set made on demand (``folder:PATH``), which has none yet."""
    spec = DATASETS.get(id_name)  # an unknown name: the usual close-match error
    if spec.role != "id":
        raise UserError(f"{id_name} is not an ID dataset, so it has no shifted sets")
    if ":" in id_name:
        return []
    _add_scheme(id_name)  # an ID set registered after this module still gets its scheme
    return [
        shifted_name(id_name, name, severity)
        for name in corruptions.CORRUPTIONS
        for severity in corruptions.SEVERITIES
    ]


def _parse(id_name: str, arg: str) -> tuple[str, int]:
    """(corruption, severity) of ``<corruption>:<severity>``, or a one-line UserError."""
    example = shifted_name(id_name, "gaussian_noise", 3)
    name, sep, level = arg.partition(":")
    if name not in corruptions.CORRUPTIONS:
        known = ", ".join(corruptions.CORRUPTIONS)
        raise UserError(f"{id_name}{SUFFIX}: unknown corruption {name!r}: choose from {known}")
    if not sep or level not in {str(s) for s in corruptions.SEVERITIES}:
        raise UserError(
            f"{id_name}{SUFFIX}:{name} needs a severity 1..5 after a colon, e.g. {example}"
        )
    return name, int(level)


def _digest(data: ImageSet) -> str:
    h = hashlib.sha256(data.images.contiguous().numpy().tobytes())
    h.update(data.labels.contiguous().numpy().tobytes())
    return h.hexdigest()


def build(base: ImageSet, name: str, corruption: str, severity: int) -> ImageSet:
    """``base`` (an ID test set) corrupted: same labels, classes and normalisation stats."""
    images = corruptions.corrupt(base.images, corruption, severity)
    meta = {
        "source": base.name,
        "split": "test",
        "corruption": corruption,
        "severity": severity,
        "params": repr(corruptions.CORRUPTIONS[corruption].params[severity - 1]),
        "seed": corruptions.SEED,
        "reference": corruptions.REFERENCE,
    }
    return ImageSet(images, base.labels.clone(), name, base.num_classes, base.mean, base.std, meta)


def shifted_spec(id_name: str, arg: str) -> DatasetSpec:
    """The DatasetSpec of ``<id_name>-c:<arg>``, arg = ``<corruption>:<severity>``."""
    corruption, severity = _parse(id_name, arg)
    name = shifted_name(id_name, corruption, severity)
    base_spec = DATASETS.get(id_name)

    def load(req: LoadRequest) -> ImageSet:
        check_split(name, req.split, ("test",))
        base = base_spec.loader(
            LoadRequest("test", req.root, req.download, req.geometry, req.preprocess)
        )
        identity = {
            "id": id_name,
            "id_sha256": _digest(base),
            "params": repr(corruptions.CORRUPTIONS[corruption].params[severity - 1]),
            "seed": corruptions.SEED,
            "version": VERSION,
        }
        key = name.replace(":", "-")  # cache file names stay portable
        return cached(key, "test", identity, lambda: build(base, name, corruption, severity))

    return DatasetSpec(
        name=name,
        kind="shifted",
        geometry=base_spec.geometry,
        num_classes=base_spec.num_classes,
        source=f"{id_name} test split, {corruption} at severity {severity} (CIFAR-10-C's "
        f"parameters, {corruptions.REFERENCE})",
        splits=("test",),
        loader=load,
        available=base_spec.available,
        role="shifted",
        corruption=corruption,
        severity=severity,
    )


def _add_scheme(id_name: str) -> None:
    DATASETS.schemes.setdefault(id_name + SUFFIX, lambda arg: shifted_spec(id_name, arg))


for _name, _spec in list(DATASETS.items()):
    if _spec.role == "id":
        _add_scheme(_name)
