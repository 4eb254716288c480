"""Detectors that rerun the network and change its last feature map before the head:
RankFeat (remove the map's rank-1 part). One extra forward pass per scored set.

The reference is OpenOOD's ``rankfeat_postprocessor.py`` (its block-4 branch); the commit
read is cited in docs/detectors.md.
"""

from __future__ import annotations

import torch

from oodbench.data.augment import normalize
from oodbench.detectors.base import ModelDetector, as_float, energy, register
from oodbench.detectors.params import Param
from oodbench.errors import UserError


def drop_rank_one(maps: torch.Tensor) -> torch.Tensor:
    """X - s1 u1 v1^T for each sample's C x HW matrix X (exact SVD, batched)."""
    b, c, h, w = maps.shape
    x = maps.reshape(b, c, h * w)
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    top = s[:, :1, None] * (u[:, :, :1] @ vh[:, :1, :])
    return (x - top).reshape(b, c, h, w)


@register
class RankFeat(ModelDetector):
    """T logsumexp(head(X - s1 u1 v1^T) / T): X = the last feature map (forward_features, C x HW
    per sample), s1 u1 v1^T its largest singular component, head = timm's forward_head (pooling
    and the classifier). T = 1."""

    name = "rankfeat"
    paper = "Song, Sebe & Wang, NeurIPS 2022"
    temperature = Param(1.0, low=0, low_open=True, help="T of the energy score")

    def score_inputs(
        self,
        model: torch.nn.Module,
        images: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> torch.Tensor:
        """Score one batch of uint8 NCHW images (already in the model's geometry)."""
        device = next(model.parameters()).device
        with torch.no_grad():
            maps = model.forward_features(normalize(images.to(device), mean, std))
            if maps.ndim != 4 or maps.shape[2] * maps.shape[3] < 2:
                raise UserError(
                    f"rankfeat needs a spatial feature map (N x C x H x W, H x W > 1) from "
                    f"the model's forward_features; this model gives {tuple(maps.shape)}"
                )
            logits = model.forward_head(drop_rank_one(maps.float()))
        return energy(as_float(logits), self.temperature).cpu()
