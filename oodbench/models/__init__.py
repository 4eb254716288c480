"""Models: ``create_model`` is ``timm.create_model``; our CIFAR-style nets live in timm's registry.

Every model (ours or any timm backbone) offers ``forward_features``, ``forward_head(x,
pre_logits=True)``, ``get_classifier()`` and ``num_features``: the detectors need nothing else.
"""

from __future__ import annotations

import difflib
from types import ModuleType
from typing import TYPE_CHECKING

from oodbench.errors import UserError

if TYPE_CHECKING:
    import torch

OUR_MODELS = ("small_cnn", "wrn_40_2", "wrn_16_2", "resnet18_cifar", "resnet18_32x32")


def _timm() -> ModuleType:
    """timm (which imports torchvision) on first use, with our nets registered into it: what
    reads cached outputs (``models.outputs``, ``models.precision``) never pays for it."""
    import timm

    from oodbench.models import cifar  # noqa: F401  (registers wrn_40_2, resnet18_cifar, ...)

    return timm


def check_model_name(name: str) -> str:
    timm = _timm()
    if timm.is_model(name):
        return name
    close = difflib.get_close_matches(name, list(OUR_MODELS) + timm.list_models(), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UserError(
        f"unknown model {name!r}: {hint}use {', '.join(OUR_MODELS)} or any name from "
        "timm.list_models()"
    )


def create_model(
    name: str, num_classes: int, in_chans: int, img_size: int | tuple[int, int] | None = None
) -> torch.nn.Module:
    """``timm.create_model`` without pretrained weights (training starts from scratch).

    ``img_size`` is passed only when set, since most timm CNNs do not accept it.
    """
    check_model_name(name)
    timm = _timm()
    if isinstance(img_size, list | tuple) and img_size[0] == img_size[1]:
        img_size = int(img_size[0])
    try:
        return timm.create_model(
            name, pretrained=False, num_classes=num_classes, in_chans=in_chans, img_size=img_size
        )
    except TypeError as exc:
        if img_size is None or "img_size" not in str(exc):
            raise
        return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
