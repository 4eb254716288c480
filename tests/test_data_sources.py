"""Download/folder loaders on fixtures written in each dataset's real on-disk format."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.data import load
from oodbench.errors import UserError

RNG = np.random.default_rng(0)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_mnist_raw_idx_in_torchvision_layout(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = RNG.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = np.arange(12) % 10
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", labels)
    data = load("mnist", "test", root=tmp_path)
    assert data.images.shape == (12, 1, 28, 28)
    assert torch.equal(data.images[:, 0], torch.from_numpy(images))
    assert data.labels.tolist() == labels.tolist()


def test_corrupt_idx_is_a_user_error(tmp_path: Path) -> None:
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(3))
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(b"\x00\x00\x08\x03" + struct.pack(">3I", 3, 28, 28) + b"\x00" * 100)
    with pytest.raises(UserError, match="truncated or corrupt"):
        load("mnist", "test", root=tmp_path)


def _cifar_batch(path: Path, n: int, label_key: str, classes: int) -> np.ndarray:
    data = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
    batch = {"batch_label": "fake", label_key: list(RNG.integers(0, classes, n)), "data": data}
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return data


def test_cifar10_pickled_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    test = _cifar_batch(folder / "test_batch", 7, "labels", 10)
    for i in range(1, 6):
        _cifar_batch(folder / f"data_batch_{i}", 3, "labels", 10)
    data = load("cifar10", "test", root=tmp_path)
    assert data.images.shape == (7, 3, 32, 32) and data.num_classes == 10
    assert torch.equal(data.images.reshape(7, -1), torch.from_numpy(test))
    assert len(load("cifar10", "train", root=tmp_path)) == 15


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _cifar_batch(folder / "test", 9, "fine_labels", 100)
    data = load("cifar100", "test", root=tmp_path)
    assert data.images.shape == (9, 3, 32, 32) and data.num_classes == 100
    assert data.labels.max() < 100


def test_svhn_mat_file(tmp_path: Path) -> None:
    from scipy.io import savemat

    x = RNG.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    y = np.array([[10], [1], [2], [3], [10]], dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})
    data = load("svhn", "test", root=tmp_path)
    assert data.images.shape == (5, 3, 32, 32)
    assert data.labels.tolist() == [0, 1, 2, 3, 0]  # the release's label 10 is digit 0
    assert torch.equal(data.images[2].permute(1, 2, 0), torch.from_numpy(x[..., 2]))


def _png(path: Path, size: tuple[int, int], seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def test_dtd_folder_labels_by_class(tmp_path: Path) -> None:
    for i, cls in enumerate(["banded", "zigzagged"]):
        for j in range(3):
            _png(tmp_path / "dtd" / "images" / cls / f"{cls}_{j}.jpg", (60, 45), i * 10 + j)
    data = load("textures", root=tmp_path)
    assert data.images.shape == (6, 3, 32, 32)
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1] and data.meta["classes"] == [
        "banded",
        "zigzagged",
    ]


def test_places365_image_folder(tmp_path: Path) -> None:
    for j in range(4):
        _png(tmp_path / "places365" / "a" / "airfield" / f"{j}.jpg", (64, 64), j)
    data = load("places365", root=tmp_path)
    assert data.images.shape == (4, 3, 32, 32) and (data.labels == -1).all()


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("lsun-crop", "LSUN/test"),
        ("lsun-crop", "LSUN_C"),
        ("lsun-resize", "LSUN_resize/LSUN_resize"),
        ("isun", "iSUN/iSUN_patches"),
    ],
)
def test_lsun_isun_folders_and_name_variants(tmp_path: Path, name: str, folder: str) -> None:
    _png(tmp_path / folder / "img0.png", (32, 32), 0)
    for j in (1, 2):
        _png(tmp_path / folder / f"img{j}.png", (36, 48), j)
    data = load(name, root=tmp_path)
    assert data.images.shape == (3, 3, 32, 32) and data.images.dtype == torch.uint8
    # a 32x32 PNG passes through unchanged (lossless, no resize, no crop)
    original = np.asarray(Image.open(tmp_path / folder / "img0.png"))
    assert np.array_equal(data.images[0].permute(1, 2, 0).numpy(), original)


def test_folder_decode_size_follows_geometry(tmp_path: Path) -> None:
    _png(tmp_path / "iSUN" / "a.png", (40, 40), 0)
    assert load("isun", root=tmp_path, geometry=(3, 16, 16)).images.shape == (1, 3, 16, 16)


def test_empty_image_folder_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "LSUN_resize").mkdir()
    (tmp_path / "LSUN_resize" / "readme.txt").write_text("no images here")
    with pytest.raises(UserError, match="no images"):
        load("lsun-resize", root=tmp_path)


@pytest.mark.parametrize(
    "name",
    [
        "mnist",
        "cifar10",
        "cifar100",
        "svhn",
        "textures",
        "places365",
        "lsun-crop",
        "lsun-resize",
        "isun",
    ],
)
def test_missing_files_say_where_to_put_them(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError) as err:
        load(name, "test", root=tmp_path)
    message = str(err.value)
    assert "--root" in message or str(tmp_path) in message
    if name not in ("lsun-crop", "lsun-resize", "isun"):
        assert "--download" in message
