"""The offline settings beyond Fashion-MNIST (issue 26), as plain data for ``config.PRESETS``.

Each is the paper's optimiser (SGD, lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4, batch
128) with a cosine schedule, on an ID set built from Debian packages (docs/datasets.md), through
the paper's network family (``wrn_40_2``) or its smaller sibling (``wrn_16_2``), so that a
multi-seed grid fits on a CPU. Provisional until measured: the epoch count (30; not yet checked
against the validation-accuracy plateau) and tau (0.04, the paper's CIFAR-10 value; the
validation-only sweep of ``bench --tau-sweep`` chooses the setting's own).
"""

from __future__ import annotations

from typing import Any

_RECIPE: dict[str, Any] = {"epochs": 30, "schedule": "cosine", "lr": 0.1, "momentum": 0.9,
                           "nesterov": True, "weight_decay": 5e-4, "batch_size": 128,
                           "tau": 0.04}  # fmt: skip
# Colour icons: CIFAR's augmentation (crop with 4 px padding, horizontal flip); 1,000 of the
# 10,910 training images held out for temperature scaling and --tune.
_ICONS = _RECIPE | {"dataset": "icons-ctx8", "crop_padding": 4, "flip": True, "val_size": 1000}
# Characters: no flip (b and d, p and q are classes), 2 px padding as Fashion-MNIST's.
_ALNUM = _RECIPE | {"dataset": "alnum-fonts", "crop_padding": 2, "flip": False, "val_size": 2000}
ICON_OOD = ("mnist-5k", "notmnist-fonts", "world-scripts", "textures-openarena")
# Letters and digits are ID here: notMNIST and MNIST are not OOD, nor world-scripts' Latin.
ALNUM_OOD = ("world-scripts-nolatin", "textures-openarena", "fashion-mnist")
ALNUM_VAL = ("world-scripts-val", "textures-openarena-val")

# name -> Preset fields: recipe, ood (test sets), val_ood (validation sets; empty = the
# default held-out real images), tracks (the setting's tracks: near = a class split).
SETTINGS: dict[str, dict[str, Any]] = {
    "icons-wrn16": {"recipe": _ICONS | {"model": "wrn_16_2"}, "ood": ICON_OOD},
    "icons-wrn40": {"recipe": _ICONS | {"model": "wrn_40_2"}, "ood": ICON_OOD},
    "alnum-wrn16": {"recipe": _ALNUM | {"model": "wrn_16_2"}, "ood": ALNUM_OOD,
                    "val_ood": ALNUM_VAL},
}  # fmt: skip
for _setting in SETTINGS.values():
    _setting.setdefault("val_ood", ())
    _setting["tracks"] = ("far", "near")
