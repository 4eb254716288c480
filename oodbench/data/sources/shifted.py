"""The covariate-shifted ID track: corrupted copies of an ID set's test split.

``<id>-c:<corruption>:<severity>`` (``fashion-mnist-c:gaussian_noise:3``) is a seeded sample of
``SAMPLE`` images of the test split of the ID set ``<id>`` with one corruption of
``data/corruptions.py`` at severity 1..5, labels kept: the images are ID images under a
covariate shift (CIFAR-10-C, Hendrycks & Dietterich 2019; MNIST-C, Mu & Gilmer 2019), never an
OOD set. ``<id>-c:<corruption>:<severity>:<n>`` takes another sample size, and ``:all`` the
whole split, as CIFAR-10-C does (``score --shift-size``): the sample is what keeps the track at
about a fifth of the whole split's cost (60 sets; docs/datasets.md). Every image is seeded by
its index in the test split, so an image of a sample is the same image in every sample.
The names are made on demand by a scheme per ID set (``<id>-c``, as ``folder:PATH``), so the
registry and its error messages do not grow by 60 names per ID set; ``shifted_sets(id)`` lists
them. Each set is built once and cached under the ID test set's checksum, the corruption's
parameters, the seed and the sample.
"""

from __future__ import annotations

import hashlib

import torch

from oodbench.data import corruptions
from oodbench.data.cache import cached
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import DATASETS, DatasetSpec, LoadRequest, check_split
from oodbench.errors import UserError

SUFFIX = "-c"  # fashion-mnist -> fashion-mnist-c, as MNIST-C and CIFAR-10-C are named
# Bump when a corruption's output changes for the same parameters (a new implementation).
VERSION = 2  # 2: a Philox stream per image, PIL JPEG
SAMPLE = 2000  # test images per shifted set by default (0 = all); config.SHIFT_SIZE, the same
SAMPLE_SEED = 20190328  # the sample's seed (corruptions.SEED's value; fixed, any number)


def shifted_name(id_name: str, corruption: str, severity: int, size: int = SAMPLE) -> str:
    tail = "" if size == SAMPLE else f":{size or 'all'}"
    return f"{id_name}{SUFFIX}:{corruption}:{severity}{tail}"


def sample_indices(n: int, size: int = SAMPLE) -> torch.Tensor:
    """The test images a shifted set is made of, ascending: ``size`` of the ``n`` drawn without
    replacement by a seeded permutation (all of them when ``size`` is 0 or at least ``n``)."""
    if not size or size >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(SAMPLE_SEED)
    return torch.randperm(n, generator=g)[:size].sort().values


def shifted_sets(id_name: str, size: int = SAMPLE) -> list[str]:
    """The shifted sets of ID set ``id_name``: every corruption at every severity, corruption
    by corruption, each ``size`` test images (0: all). Empty for an ID set made on demand
    (``folder:PATH``), which has none yet."""
    spec = DATASETS.get(id_name)  # an unknown name: the usual close-match error
    if spec.role != "id":
        raise UserError(f"{id_name} is not an ID dataset, so it has no shifted sets")
    if ":" in id_name:
        return []
    _add_scheme(id_name)  # an ID set registered after this module still gets its scheme
    return [
        shifted_name(id_name, name, severity, size)
        for name in corruptions.CORRUPTIONS
        for severity in corruptions.SEVERITIES
    ]


def _parse(id_name: str, arg: str) -> tuple[str, int, int]:
    """(corruption, severity, sample size) of ``<corruption>:<severity>[:<n>|:all]``, or a
    one-line UserError."""
    example = shifted_name(id_name, "gaussian_noise", 3)
    name, _, rest = arg.partition(":")
    level, sep_size, size_text = rest.partition(":")
    if name not in corruptions.CORRUPTIONS:
        known = ", ".join(corruptions.CORRUPTIONS)
        raise UserError(f"{id_name}{SUFFIX}: unknown corruption {name!r}: choose from {known}")
    if level not in {str(s) for s in corruptions.SEVERITIES}:
        raise UserError(
            f"{id_name}{SUFFIX}:{name} needs a severity 1..5 after a colon, e.g. {example}"
        )
    if not sep_size:
        return name, int(level), SAMPLE
    if size_text == "all":
        return name, int(level), 0
    if not size_text.isdigit() or int(size_text) < 1 or str(int(size_text)) != size_text:
        raise UserError(f"{id_name}{SUFFIX}:{name}:{level}: the sample size after it must be a "
                        f"whole number >= 1 or 'all', got {size_text!r}")  # fmt: skip
    return name, int(level), int(size_text)


def _digest(data: ImageSet) -> str:
    h = hashlib.sha256(data.images.contiguous().numpy().tobytes())
    h.update(data.labels.contiguous().numpy().tobytes())
    return h.hexdigest()


def build(base: ImageSet, name: str, corruption: str, severity: int, size: int) -> ImageSet:
    """``size`` images of ``base`` (an ID test set; ``sample_indices``) corrupted: same labels,
    classes and normalisation stats."""
    index = sample_indices(len(base), size)
    images = corruptions.corrupt(base.images[index], corruption, severity, indices=index.tolist())
    meta = {
        "source": base.name,
        "split": "test",
        "corruption": corruption,
        "severity": severity,
        "params": repr(corruptions.CORRUPTIONS[corruption].params[severity - 1]),
        "seed": corruptions.SEED,
        "reference": corruptions.REFERENCE,
        "sample": f"{len(index)} of {len(base)} test images (seed {SAMPLE_SEED})",
    }
    labels = base.labels[index].clone()
    return ImageSet(images, labels, name, base.num_classes, base.mean, base.std, meta)


def shifted_spec(id_name: str, arg: str) -> DatasetSpec:
    """The DatasetSpec of ``<id_name>-c:<arg>``, arg = ``<corruption>:<severity>``."""
    corruption, severity, size = _parse(id_name, arg)
    name = shifted_name(id_name, corruption, severity, size)
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
            "sample": [size, SAMPLE_SEED],
        }
        key = name.replace(":", "-")  # cache file names stay portable
        return cached(key, "test", identity, lambda: build(base, name, corruption, severity, size))

    return DatasetSpec(
        name=name,
        kind="shifted",
        geometry=base_spec.geometry,
        num_classes=base_spec.num_classes,
        source=f"{id_name} test split ({f'{size} images, seeded' if size else 'all'}), "
        f"{corruption} at severity {severity} (CIFAR-10-C's parameters, "
        f"{corruptions.REFERENCE})",
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
