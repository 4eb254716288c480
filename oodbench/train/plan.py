"""What a training run sees: the data on the device (less the ID split's validation images,
``oodbench.data.split``), each epoch's shard and augmentation draws, and the LR schedule. All
are pure functions of the config, the seed and the epoch, which is what makes resume exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from oodbench import parallel as distributed
from oodbench.config import TrainConfig
from oodbench.data import load
from oodbench.data.augment import draw_crop_flip, pad_images
from oodbench.data.split import derive_seed, validation_split
from oodbench.errors import UserError
from oodbench.provenance import DATASETS, data_key


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Per-step LR multiplier: linear warm-up, then cosine to 0 or the paper's multistep.

    Multistep milestones are given for a 200-epoch run (80/140) and scale with --epochs.
    """
    total, warm = cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch
    milestones = [round(m * cfg.epochs / 200) * steps_per_epoch for m in cfg.milestones]

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "multistep":
            return cfg.gamma ** sum(step >= m for m in milestones)
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@dataclass
class Data:
    padded: torch.Tensor  # uint8 train images, zero-padded for cropping, on the device
    labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    val_images: torch.Tensor  # the held-out ID validation split (empty with --val-size 0)
    val_labels: torch.Tensor
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: dict[str, Any] = field(default_factory=dict)


def load_data(cfg: TrainConfig, device: torch.device) -> Data:
    kw = {"root": cfg.root, "download": cfg.download}
    train_set, test_set = load(cfg.dataset, "train", **kw), load(cfg.dataset, "test", **kw)
    if train_set.num_classes < 2:
        raise UserError(f"{cfg.dataset} has no classes to train on; pick an ID dataset")
    train_idx, val_idx = validation_split(cfg, train_set)
    n_test = min(len(test_set), cfg.subset or len(test_set))  # smoke runs evaluate less too
    info = {
        "num_classes": train_set.num_classes,
        "in_chans": train_set.channels,
        "img_size": list(train_set.size),
        "mean": list(train_set.mean),
        "std": list(train_set.std),
        "n_train": len(train_idx),
        "n_test": n_test,
        "val_indices": val_idx.tolist(),
        # what was read, as built: `score` checks the ID data against these (provenance.py)
        DATASETS: {data_key(cfg.dataset, "train"): train_set.checksum(),
                   data_key(cfg.dataset, "test"): test_set.checksum()},
    }  # fmt: skip
    return Data(
        padded=pad_images(train_set.images[train_idx], cfg.crop_padding).to(device),
        labels=train_set.labels[train_idx].to(device),
        test_images=test_set.images[:n_test].to(device),
        test_labels=test_set.labels[:n_test].to(device),
        val_images=train_set.images[val_idx].to(device),
        val_labels=train_set.labels[val_idx].to(device),
        size=train_set.size,
        mean=train_set.mean,
        std=train_set.std,
        info=info,
    )


def epoch_plan(
    cfg: TrainConfig, epoch: int, n: int, ctx: distributed.Dist
) -> tuple[torch.Tensor, ...]:
    """This rank's shard of the epoch's permutation and augmentation draws (like a
    DistributedSampler), all derived from (seed, epoch) and moved to the device once."""
    g = torch.Generator().manual_seed(derive_seed(cfg.seed, "epoch", epoch))
    perm = torch.randperm(n, generator=g)
    dy, dx, flips = draw_crop_flip(n, cfg.crop_padding, cfg.flip, g)
    usable = n - n % ctx.world
    mine = slice(ctx.rank, usable, ctx.world)
    return tuple(t[mine].to(ctx.device) for t in (perm, dy, dx, flips))
