"""OpenOOD checkpoints onto ``resnet18_32x32`` (models/cifar.py, OpenOOD's key layout).

A plain ``best.ckpt`` of OpenOOD v1.5 (CE, LogitNorm, ...) is ``ResNet18_32x32.state_dict()``:
its keys are already ours (a ``module.`` from DataParallel is removed by ``strip_prefixes``).
T2FNorm's ``T2FNormNet`` (openood/networks/t2fnorm_net.py, OpenOOD commit 31668d8) keeps the
ResNet under ``backbone.`` and a buffer ``tau``; at OOD inference it computes
``fc(features / tau)`` (``forward_ood_inference``, used by its postprocessor). We drop the
prefix and fold ``1 / tau`` into the head, ``fc.weight / tau``: the logits are then exactly
those of ``forward_ood_inference``, and the head stays consistent with the features that
feature- and head-based detectors read.
"""

from __future__ import annotations

from typing import Any

import torch

OPENOOD_MODELS = ("resnet18_32x32",)
WRAPPER = "backbone."  # T2FNormNet, and OpenOOD's other wrappers of a backbone
# OpenOOD v1.5's default preprocessing of its ID sets (openood/evaluation_api/preprocessor.py at
# the v1.5 tag, 8d44375): the normalisation its checkpoints were trained and evaluated with.
NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}


Tensors = dict[str, torch.Tensor]


def from_openood(tensors: Tensors) -> tuple[Tensors, dict[str, Any]]:
    """(tensors with our keys, what was changed: recorded in config.json's ``imported``)."""
    inner = {k[len(WRAPPER) :]: v for k, v in tensors.items() if k.startswith(WRAPPER)}
    rest = {k: v for k, v in tensors.items() if not k.startswith(WRAPPER)}
    if not inner or set(rest) - {"tau"}:
        return tensors, {}  # not a wrapped backbone: check_fit names what does not fit
    done: dict[str, Any] = {"prefix_removed": WRAPPER}
    if "tau" in rest and "fc.weight" in inner:
        tau = float(rest["tau"].reshape(-1)[0])
        inner["fc.weight"] = inner["fc.weight"] / tau
        done["t2fnorm_tau_folded"] = tau
    return inner, done
