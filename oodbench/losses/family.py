"""LogitNorm's family and successors (issue 13): T2FNorm, ELogitNorm, label smoothing, RegMixup.

Each is one registered class in the loss registry (``oodbench.losses``), like CE and
LogitNorm; the registry imports this module, so their names are always registered.
Sources, with repository, path and commit, are in docs/training.md ("The losses").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from oodbench.losses.base import Head, Loss, register
from oodbench.registry import Param


def t2fnorm_logits(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   tau: float) -> torch.Tensor:  # fmt: skip
    """``fc(normalize(h) / tau)``: OpenOOD's T2FNormNet.forward in training."""
    return F.linear(F.normalize(features.float(), dim=-1) / tau, weight.float(),
                    None if bias is None else bias.float())  # fmt: skip


def elogitnorm_scale(logits: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """D(z) per sample, (N, 1): the mean over all C classes j of
    ``|z_j - z_c| / ||w_c - w_j||`` with c = argmax z, as the authors' ``elogitnorm_loss``.

    The ``+ I`` on the diagonal is theirs (the j = c term is 0 / 1). Two guards leave every
    ordinary value bitwise as theirs: a pair of identical weight rows off the diagonal (no
    boundary between the two classes) contributes 0 instead of 0/0 or x/0, and an all-zero
    scale (all logits equal) becomes 1, so CE sees the raw, equal logits instead of NaN.
    """
    w_diff = weight.unsqueeze(1) - weight.unsqueeze(0)
    denom = torch.norm(w_diff, dim=2)
    denom = denom + torch.eye(denom.size(0), device=denom.device, dtype=denom.dtype)
    values, nn_idx = logits.max(dim=1)
    gaps = (logits - values.unsqueeze(1)).abs()
    rows = denom[nn_idx]
    degenerate = rows == 0
    terms = gaps / torch.where(degenerate, torch.ones_like(rows), rows)
    terms = torch.where(degenerate, torch.zeros_like(terms), terms)
    scale = terms.mean(dim=1, keepdim=True)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


@register
class T2FNorm(Loss):
    """Regmi et al., CVPRW 2024 (arXiv 2305.17797): CE on ``fc(normalize(h) / tau)``.

    At test time the network is ``fc(h / tau)``, as OpenOOD's ``forward_ood_inference``: the
    head ``(W / tau, b)`` (``inference_head``), the features the raw ``h``."""

    name, title = "t2fnorm", "T2FNorm"
    params = (
        Param(0.1, name="tau", help="feature temperature; OpenOOD's train_t2fnorm.yml uses 0.1",
              low=0.0, low_open=True, symbol="τ", tag="t"),
    )  # fmt: skip
    needs_features = True

    def forward(self, logits, targets, features, head):  # type: ignore[no-untyped-def]
        weight, bias = head
        return F.cross_entropy(t2fnorm_logits(features, weight, bias, self.values["tau"]), targets)

    def inference_head(self, weight: torch.Tensor, bias: torch.Tensor | None) -> Head:
        """``fc(h / tau) == (W / tau) h + b``: OpenOOD's T2FNormNet.forward_ood_inference (it
        skips the division only for its ImageNet models, which are not trained with T2FNorm)."""
        return weight / self.values["tau"], bias


@register
class ELogitNorm(Loss):
    """Ding et al., arXiv 2504.11434: CE on ``z / D(z)``, D(z) the mean distance of the
    feature to the decision boundaries of the predicted class. No hyperparameter."""

    name, title = "elogitnorm", "ELogitNorm"
    needs_features = True  # for the head's weight; gradients flow through D(z) into it

    def forward(self, logits, targets, features, head):  # type: ignore[no-untyped-def]
        logits = logits.float()
        return F.cross_entropy(logits / elogitnorm_scale(logits, head[0].float()), targets)


@register
class LabelSmoothing(Loss):
    """Szegedy et al., CVPR 2016: CE against ``(1 - eps) * onehot + eps / C``."""

    name, title = "label-smoothing", "Label smoothing"
    params = (
        Param(0.1, name="epsilon", help="smoothing: the mass spread evenly over all classes",
              low=0.0, high=1.0, high_open=True, symbol="ε", tag="e"),
    )  # fmt: skip

    def forward(self, logits, targets, features, head):  # type: ignore[no-untyped-def]
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.values["epsilon"])


@dataclass(frozen=True)
class Mixed:
    """RegMixup's targets for the clean + mixed batch: ``lam * CE(y_a) + (1 - lam) * CE(y_b)``."""

    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: float


@register
class RegMixup(Loss):
    """Pinto et al., NeurIPS 2022: CE on the clean batch and the mixup batch, concatenated,
    one ``lam ~ Beta(alpha, alpha)`` per batch (OpenOOD's regmixup_trainer.py, alpha 20)."""

    name, title = "regmixup", "RegMixup"
    params = (
        Param(20.0, name="alpha", help="Beta(alpha, alpha) of the mixing weight; OpenOOD uses 20",
              low=0.0, low_open=True, symbol="α", tag="a"),
    )  # fmt: skip
    mixes_inputs = True

    def mix_inputs(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[torch.Tensor, Any]:
        alpha = self.values["alpha"]
        lam = float(np.random.default_rng(seed).beta(alpha, alpha))
        index = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
        index = index.to(x.device)
        mixed = lam * x + (1 - lam) * x[index]
        return torch.cat([x, mixed]), Mixed(torch.cat([y, y]), torch.cat([y, y[index]]), lam)

    def forward(self, logits, targets, features, head):  # type: ignore[no-untyped-def]
        logits = logits.float()
        if not isinstance(targets, Mixed):  # called on plain labels: the clean term alone
            return F.cross_entropy(logits, targets)
        lam = targets.lam
        return lam * F.cross_entropy(logits, targets.y_a) + (1 - lam) * F.cross_entropy(
            logits, targets.y_b
        )
