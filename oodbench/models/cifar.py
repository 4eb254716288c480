"""CIFAR-style networks registered into timm: ``small_cnn``, ``wrn_40_2``, ``wrn_16_2``,
``resnet18_cifar`` and ``resnet18_32x32`` (OpenOOD's key layout).

They follow timm's interface (``forward_features`` returns the last feature map,
``forward_head(x, pre_logits=True)`` the pooled penultimate features), so ``timm.create_model``
builds them and every feature-based detector works on them unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.models import register_model
from torch import nn
from torch.nn import functional as F

# timm passes these to every entrypoint; our nets have no pretrained weights.
_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "img_size")


def _own_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in _TIMM_ONLY}


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _TimmLike(nn.Module):
    """The timm model interface on top of ``self.fc`` and ``forward_features``."""

    num_classes: int
    num_features: int
    fc: nn.Module
    drop_rate: float = 0.0

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        if self.drop_rate:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class SmallCNN(_TimmLike):
    """Compact BatchNorm CNN for CPU runs (~157k parameters at width 24).

    Stride-2 convs take 28x28 down to 14, 7 and 4: on CPU, full-resolution layers cost more
    in memory traffic than they add in accuracy, while the cheap 7x7 and 4x4 layers widen the
    receptive field that global average pooling needs (measured on a Fashion-MNIST proxy).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, width: int = 24) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(in_chans, w, stride=2),
            _conv_bn(w, 2 * w, stride=2),
            _conv_bn(2 * w, 2 * w),
            _conv_bn(2 * w, 4 * w, stride=2),
            _conv_bn(4 * w, 4 * w),
        )
        self.num_classes, self.num_features = num_classes, 4 * w
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class _WideBlock(nn.Module):
    """Pre-activation wide-ResNet block (Zagoruyko & Komodakis, 2016), dropout between convs."""

    def __init__(self, cin: int, cout: int, stride: int, drop: float) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.drop = drop
        self.short = None
        if cin != cout or stride != 1:
            self.short = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = F.dropout(F.relu(self.bn2(y)), p=self.drop, training=self.training)
        y = self.conv2(y)
        return y + (x if self.short is None else self.short(o))


class WideResNet(_TimmLike):
    def __init__(
        self,
        depth: int = 40,
        widen: int = 2,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.3,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WideResNet depth must be 6n + 4")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Conv2d(in_chans, widths[0], 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        for i, stride in enumerate((1, 2, 2)):
            for j in range(n):
                cin = widths[i] if j == 0 else widths[i + 1]
                blocks.append(_WideBlock(cin, widths[i + 1], stride if j == 0 else 1, drop_rate))
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(widths[3])
        self.num_classes, self.num_features = num_classes, widths[3]
        self.fc = nn.Linear(self.num_features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.blocks(self.stem(x))))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(cin, cout, stride),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.short: nn.Module = nn.Identity()
        if cin != cout or stride != 1:
            self.short = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.short(x))


class ResNet18Cifar(_TimmLike):
    """ResNet-18 with a 3x3 stride-1 stem and no max-pool, the usual CIFAR variant."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.stem = _conv_bn(in_chans, 64)
        layers: list[nn.Module] = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.num_classes, self.num_features = num_classes, 512
        self.fc = nn.Linear(512, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))


class _OpenOODBlock(nn.Module):
    """OpenOOD's ``BasicBlock``, with its attribute names (they are the state-dict keys)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18_32x32(_TimmLike):  # noqa: N801  (OpenOOD's name)
    """OpenOOD v1.5's CIFAR ResNet-18 (openood/networks/resnet18_32x32.py) with its module
    names, so its checkpoints (``best.ckpt``: CE, LogitNorm, T2FNorm...) load key for key:
    ``conv1``, ``bn1``, ``layer1``-``layer4`` of two blocks (``conv1``, ``bn1``, ``conv2``,
    ``bn2``, ``shortcut``), ``fc``. The same network as ``resnet18_cifar``, other key names."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (cout, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), 1):
            setattr(self, f"layer{i}", nn.Sequential(_OpenOODBlock(cin, cout, stride),
                                                     _OpenOODBlock(cout, cout, 1)))  # fmt: skip
            cin = cout
        self.num_classes, self.num_features = num_classes, 512
        self.fc = nn.Linear(512, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


@register_model
def small_cnn(pretrained: bool = False, **kwargs: Any) -> SmallCNN:
    return SmallCNN(**_own_kwargs(kwargs))


@register_model
def wrn_40_2(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    return WideResNet(depth=40, widen=2, **_own_kwargs(kwargs))


@register_model
def wrn_16_2(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-40-2's smaller sibling (Zagoruyko & Komodakis, BMVC 2016): 2 blocks per stage."""
    return WideResNet(depth=16, widen=2, **_own_kwargs(kwargs))


@register_model
def resnet18_cifar(pretrained: bool = False, **kwargs: Any) -> ResNet18Cifar:
    return ResNet18Cifar(**_own_kwargs(kwargs))


@register_model
def resnet18_32x32(pretrained: bool = False, **kwargs: Any) -> ResNet18_32x32:
    return ResNet18_32x32(**_own_kwargs(kwargs))
