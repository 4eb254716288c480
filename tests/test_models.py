"""Models: timm-registered CIFAR nets with timm's interface; create_model for any timm name."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from oodbench.errors import UserError
from oodbench.models import OUR_MODELS, cifar, create_model


@pytest.mark.parametrize("name", OUR_MODELS)
@pytest.mark.parametrize("in_chans,size,classes", [(1, 28, 10), (3, 32, 100)])
def test_timm_interface(name: str, in_chans: int, size: int, classes: int) -> None:
    assert cifar is not None and timm.is_model(name)  # importing models.cifar registers ours
    model = create_model(name, classes, in_chans, img_size=size).eval()
    x = torch.randn(2, in_chans, size, size)
    with torch.no_grad():
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        logits = model(x)
    assert feats.ndim == 4
    assert pre.shape == (2, model.num_features)
    head = model.get_classifier()
    assert isinstance(head, nn.Linear) and head.out_features == classes
    assert torch.allclose(head(pre), logits, atol=1e-5)


def test_wrn_40_2_is_the_papers_net() -> None:
    model = create_model("wrn_40_2", 10, 3)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (3, 3) and convs[0].stride == (1, 1)
    assert model.num_features == 128
    assert model.blocks[0].drop == 0.3
    assert 2.2e6 < sum(p.numel() for p in model.parameters()) < 2.3e6  # WRN-40-2: 2.2M


def test_wrn_16_2_is_the_same_family_smaller() -> None:
    small, big = create_model("wrn_16_2", 10, 3), create_model("wrn_40_2", 10, 3)
    assert type(small) is type(big) and small.num_features == big.num_features == 128
    assert len(small.blocks) == 6 and len(big.blocks) == 18  # (depth - 4) / 6 per stage, x 3
    assert 0.69e6 < sum(p.numel() for p in small.parameters()) < 0.70e6  # WRN-16-2: 0.7M


def test_resnet18_cifar_has_3x3_stem_and_no_maxpool() -> None:
    model = create_model("resnet18_cifar", 10, 3)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.kernel_size == (3, 3) and first.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())


def test_small_cnn_is_small() -> None:
    model = create_model("small_cnn", 10, 1)
    assert 50_000 < sum(p.numel() for p in model.parameters()) < 200_000


def test_any_timm_model_works() -> None:
    model = create_model("resnet10t", 7, 1).eval()
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 7)
    assert model.get_classifier().out_features == 7


def test_unknown_model_suggests_a_name() -> None:
    with pytest.raises(UserError, match="did you mean 'wrn_40_2'"):
        create_model("wrn_40_3", 10, 3)
