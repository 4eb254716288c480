"""Training losses: one registered class each, the only list of loss names.

The registry (``base``) sits below both the training loop that uses a loss and the report that
labels it, so neither imports the other. CE, LogitNorm and the paper's logit penalty are here,
LogitNorm's family in ``family``; importing this package registers them all. 0.1.0's
``oodbench.losses`` names (LOSSES, logit_norm_loss, make_loss) are kept.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from oodbench.losses.base import (
    LOSSES,
    Head,
    Loss,
    Param,
    configure,
    declaring,
    default_name,
    label,
    make_loss,
    parse_loss_params,
    register,
    resolve_params,
    title,
    unknown_param_message,
)

__all__ = [
    "LOSSES", "NORM_EPS", "CrossEntropy", "Head", "Loss", "LogitNorm", "LogitPenalty", "Param",
    "configure", "cross_entropy", "declaring", "default_name", "label", "logit_norm_loss",
    "logit_norm_lower_bound", "logit_penalty", "make_loss", "parse_loss_params", "register",
    "resolve_params", "title", "unknown_param_message",
]  # fmt: skip

NORM_EPS = 1e-7  # the paper's epsilon in f / (tau * (||f|| + eps))

# ------------------------------------------------------------------------------- the losses


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), targets)


def logit_norm_loss(logits: torch.Tensor, targets: torch.Tensor, tau: float) -> torch.Tensor:
    """Cross-entropy on ``logits / (tau * (||logits||_2 + 1e-7))``, the norm per sample.

    Computed in float32 so bf16 autocast cannot round the tiny normalised logits.
    """
    logits = logits.float()
    norms = torch.linalg.vector_norm(logits, dim=1, keepdim=True) + NORM_EPS
    return F.cross_entropy(logits / (norms * tau), targets)


def logit_penalty(logits: torch.Tensor, targets: torch.Tensor, lam: float) -> torch.Tensor:
    """The paper's ablation: cross-entropy + lambda * mean squared logit norm."""
    logits = logits.float()
    return F.cross_entropy(logits, targets) + lam * logits.pow(2).sum(dim=1).mean()


def logit_norm_lower_bound(num_classes: int, tau: float) -> float:
    """The paper's bound: L_logit_norm >= log(1 + (k - 1) * exp(-2 / tau))."""
    return math.log1p((num_classes - 1) * math.exp(-2.0 / tau))


@register
class CrossEntropy(Loss):
    name, title = "ce", "CE"

    def forward(self, logits, targets, features, head):  # type: ignore[no-untyped-def]
        return cross_entropy(logits, targets)


@register
class LogitNorm(Loss):
    """Wei et al., ICML 2022: cross-entropy on logits normalised to norm 1/tau."""

    name, title = "logitnorm", "LogitNorm"
    params = (
        Param(0.04, name="tau", help="LogitNorm temperature; the paper uses 0.04 on CIFAR-10",
              low=0.0, low_open=True, symbol="τ", tag="t"),
    )  # fmt: skip

    def forward(self, logits, targets, features, head):  # type: ignore[no-untyped-def]
        return logit_norm_loss(logits, targets, self.values["tau"])


@register
class LogitPenalty(Loss):
    """The paper's ablation: cross-entropy plus lambda times the mean squared logit norm."""

    name, title = "logit-penalty", "Logit penalty"
    params = (
        Param(0.1, name="penalty", help="lambda, the weight of the squared logit norm",
              low=0.0, symbol="λ", tag="l"),
    )  # fmt: skip

    def forward(self, logits, targets, features, head):  # type: ignore[no-untyped-def]
        return logit_penalty(logits, targets, self.values["penalty"])


# After CE, LogitNorm and the penalty: the registry's order is the report's column order.
from oodbench.losses import family  # noqa: E402, F401  (registers T2FNorm, ELogitNorm, ...)
