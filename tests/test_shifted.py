"""The covariate-shifted ID track's data: names, severities, determinism, cache, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from oodbench.config import ScoreConfig
from oodbench.data import DATASETS, load, shifted_sets
from oodbench.data import corruptions as C
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import DatasetSpec, LoadRequest
from oodbench.data.sources import shifted
from oodbench.errors import UserError
from oodbench.scoring.inputs import default_ood, ood_names

# CIFAR-10-C's severity parameters, transcribed from the reference code that made it:
# https://github.com/hendrycks/robustness/blob/ca360085d57889288c4143fddd8a707bbcae01bd/
# ImageNet-C/create_c/make_cifar_c.py (the ``c = [...]`` line of each function).
CIFAR10_C = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
    "speckle_noise": [0.06, 0.1, 0.12, 0.16, 0.2],
    "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "zoom_blur": [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
                  np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)],
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    "jpeg_compression": [80, 65, 58, 50, 40],
}  # fmt: skip
# corrupt-tta 0.1.7's tables for three of them (its corruptions.py): ImageNet-C's, for 224 px.
CORRUPT_TTA = {
    "gaussian_noise": [0.08, 0.12, 0.18, 0.26, 0.38],
    "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
    "jpeg_compression": [25, 18, 15, 10, 7],
}


def _sha(images: torch.Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def few() -> torch.Tensor:
    """12 Fashion-MNIST test images."""
    return load("fashion-mnist", "test").images[:12]


@pytest.fixture()
def tiny_id(monkeypatch: pytest.MonkeyPatch, few: torch.Tensor) -> str:
    """A registered 12-image ID set (so a shifted set builds in milliseconds)."""
    name = "tiny-id"

    def loader(req: LoadRequest) -> ImageSet:
        return ImageSet(few[:12], torch.arange(12) % 10, name, 10, (0.3,), (0.35,))

    spec = DatasetSpec(name, "offline", "1x28x28", 10, "test", ("train", "test"), loader,
                       lambda root: True, role="id")  # fmt: skip
    monkeypatch.setitem(DATASETS._items, name, spec)
    # shifted_sets() adds the scheme; setitem-then-del makes monkeypatch remove it afterwards
    monkeypatch.setitem(DATASETS.schemes, name + shifted.SUFFIX, None)
    del DATASETS.schemes[name + shifted.SUFFIX]
    return name


def test_severities_are_cifar10_c_reference_ones() -> None:
    assert set(C.CORRUPTIONS) == set(CIFAR10_C) and len(C.CORRUPTIONS) >= 8
    for name, ref in CIFAR10_C.items():
        ours = C.CORRUPTIONS[name].params
        assert len(ours) == len(C.SEVERITIES) == 5, name
        for mine, theirs in zip(ours, ref, strict=True):
            assert np.array_equal(np.asarray(mine), np.asarray(theirs)), (name, mine, theirs)
    for name, table in CORRUPT_TTA.items():  # why corrupt-tta is not used: other tables
        assert list(C.CORRUPTIONS[name].params) != table, name


def test_the_contract_names_and_specs() -> None:
    names = shifted_sets("fashion-mnist")
    assert len(names) == len(C.CORRUPTIONS) * 5 and len(set(names)) == len(names)
    assert names[0] == "fashion-mnist-c:gaussian_noise:1"
    seen = set()
    for name in names:
        spec = DATASETS.get(name)
        assert (spec.name, spec.kind, spec.role, spec.splits) == (name, "shifted", "shifted",
                                                                  ("test",))  # fmt: skip
        assert name == f"fashion-mnist-c:{spec.corruption}:{spec.severity}"
        assert spec.num_classes == 10 and spec.geometry == "1x28x28" and spec.available(None)
        seen.add((spec.corruption, spec.severity))
    assert seen == {(c, s) for c in C.CORRUPTIONS for s in range(1, 6)}
    # every ID set has them (colour sets too); folder:PATH sets have none yet
    assert shifted_sets("cifar10")[-1] == "cifar10-c:jpeg_compression:5"
    assert DATASETS.get("cifar10-c:fog:2").geometry == "3x32x32"


def test_never_offered_as_ood_by_default() -> None:
    names = set(default_ood(None, "fashion-mnist"))
    assert names and not names & set(shifted_sets("fashion-mnist"))
    assert all(DATASETS.get(n).kind != "shifted" for n in names)
    with pytest.raises(UserError, match="not an OOD set"):  # nor when asked for
        ood_names(ScoreConfig(ood=("fashion-mnist-c:fog:3",)), "fashion-mnist")


@pytest.mark.parametrize("bad", ["fashion-mnist-c:nope:3", "fashion-mnist-c:fog",
                                 "fashion-mnist-c:fog:6", "fashion-mnist-c:fog:0",
                                 "fashion-mnist-c:fog:3:0", "fashion-mnist-c:fog:3:x",
                                 "fashion-mnist-c:fog:3:05", "fashion-mnist-c:fog:3:"])  # fmt: skip
def test_bad_names_are_one_line_user_errors(bad: str) -> None:
    with pytest.raises(UserError) as err:
        DATASETS.get(bad)
    assert "\n" not in str(err.value) and "fashion-mnist-c" in str(err.value)
    with pytest.raises(UserError, match="not an ID dataset"):
        shifted_sets("mnist-5k")


def test_every_corruption_is_deterministic_and_grows_with_severity(few: torch.Tensor) -> None:
    colour = torch.randint(0, 256, (4, 3, 32, 32), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)  # fmt: skip
    for images in (few[:8], colour):
        for name in C.CORRUPTIONS:
            change = []
            for severity in C.SEVERITIES:
                out = C.corrupt(images, name, severity)
                assert out.shape == images.shape and out.dtype == torch.uint8
                assert _sha(C.corrupt(images, name, severity)) == _sha(out), (name, severity)
                # each image is seeded by its index: a slice is the slice of the whole
                assert torch.equal(C.corrupt(images[2:], name, severity, start=2), out[2:])
                change.append((out.float() - images.float()).abs().mean().item())
            assert change[0] > 0 and change[-1] > change[0], (name, change)


def test_a_shifted_set_builds_caches_and_rebuilds_the_same(
    tiny_id: str, fresh_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = shifted_sets(tiny_id)
    name = names[names.index(f"{tiny_id}-c:shot_noise:3")]
    first = load(name)
    assert first.labels.tolist() == (torch.arange(12) % 10).tolist()  # labels kept
    assert (first.name, first.num_classes, first.meta["severity"]) == (name, 10, 3)
    assert not torch.equal(first.images, load(tiny_id, "test").images)
    files = list((fresh_cache / "datasets").glob("*.safetensors"))
    assert len(files) == 1 and ":" not in files[0].name
    assert "cache" in load(name).meta  # the second load reads the cache
    files[0].unlink()  # built again from nothing: the same checksum
    assert _sha(load(name).images) == _sha(first.images)
    # a truncated cache file is one warning line and a rebuild, never a traceback
    files[0].write_bytes(files[0].read_bytes()[:100])
    capsys.readouterr()
    again = load(name)
    err = capsys.readouterr().err.strip()
    assert "corrupt" in err and len(err.splitlines()) == 1
    assert _sha(again.images) == _sha(first.images)
    with pytest.raises(UserError, match="split"):
        load(name, "train")


def test_a_sample_is_the_same_images_as_the_whole_split(tiny_id: str, fresh_cache: Path) -> None:
    """``:<n>`` is a seeded sample of the test split: sorted, stable, and each image is the
    one the whole split (``:all``) has at that index (seeded by it); the default is SAMPLE."""
    assert shifted.SAMPLE == ScoreConfig().shift_size == 2000
    index = shifted.sample_indices(12, 5)
    assert index.tolist() == sorted(set(index.tolist())) and len(index) == 5
    assert torch.equal(index, shifted.sample_indices(12, 5))  # seeded
    assert not torch.equal(index, torch.arange(5))  # a draw, not the first images
    assert torch.equal(shifted.sample_indices(12, 0), torch.arange(12))
    assert torch.equal(shifted.sample_indices(12, 50), torch.arange(12))
    assert shifted_sets(tiny_id, 5)[0] == f"{tiny_id}-c:gaussian_noise:1:5"
    assert shifted_sets(tiny_id, 0)[-1] == f"{tiny_id}-c:jpeg_compression:5:all"
    whole, part = load(f"{tiny_id}-c:shot_noise:3:all"), load(f"{tiny_id}-c:shot_noise:3:5")
    assert len(whole) == 12 and len(part) == 5
    assert torch.equal(part.images, whole.images[index])
    assert torch.equal(part.labels, whole.labels[index])
    assert len(load(f"{tiny_id}-c:shot_noise:3")) == 12  # 12 < SAMPLE: the whole split
    with pytest.raises(UserError, match="--shift-size"):
        ScoreConfig(shift_size=-1)


def test_missing_id_data_is_a_one_line_user_error(tmp_path: Path, fresh_cache: Path) -> None:
    """The ID data of a shifted set is absent (CIFAR-10 under an empty --root)."""
    with pytest.raises(UserError) as err:
        load("cifar10-c:fog:3", root=tmp_path)
    assert "cifar10" in str(err.value) and "\n" not in str(err.value)
    assert not DATASETS.get("cifar10-c:fog:3").available(tmp_path)
