"""Tiny timm-like stand-ins for scoring tests: a model and a separable toy image problem.

Images are 1 x 8 x 8; class c lights up the 16 pixels of rows 2c and 2c + 1. The model's
features are ReLU(x + 1) of the normalised pixels (64-d); its linear head weighs each block.
"""

from __future__ import annotations

import torch
from torch import nn

from oodbench.data.imageset import ImageSet

MEAN, STD = (0.5,), (0.5,)
K = 4
SIDE = 8
P = SIDE * SIDE
B = P // K  # pixels per class block


class ToyNet(nn.Module):
    def __init__(self, scale: float = 0.5, bias: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(P, K, bias=bias)
        with torch.no_grad():
            w = torch.zeros(K, P)
            for c in range(K):
                w[c, B * c : B * (c + 1)] = scale * torch.linspace(0.8, 1.2, B)  # no exact ties
            self.fc.weight.copy_(w)
            if bias:
                self.fc.bias.copy_(torch.linspace(-0.2, 0.2, K))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x.flatten(1) + 1.0)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def toy_images(n: int, seed: int, noise: bool = False) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % K
    if noise:
        images = torch.randint(0, 256, (n, P), generator=g)
        labels = torch.full((n,), -1)
    else:
        images = torch.randint(100, 140, (n, P), generator=g)
        bright = torch.randint(220, 256, (n, B), generator=g)
        for c in range(K):
            rows = labels == c
            images[rows, B * c : B * (c + 1)] = bright[rows]
    return ImageSet(
        images=images.to(torch.uint8).view(n, 1, SIDE, SIDE),
        labels=labels.to(torch.int64),
        name="toy-noise" if noise else "toy",
        num_classes=0 if noise else K,
        mean=MEAN,
        std=STD,
    )
