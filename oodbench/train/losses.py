"""Training losses: cross-entropy, LogitNorm (Wei et al., ICML 2022) and the logit penalty.

Each loss has a functional form and a registry entry (a factory taking the TrainConfig-style
hyper-parameters). The registry names are the CLI names: ``ce``, ``logitnorm``,
``logit-penalty``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

from oodbench.errors import UserError
from oodbench.registry import Registry

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: Registry[Callable[..., LossFn]] = Registry("loss")
NORM_EPS = 1e-7  # the paper's epsilon in f / (tau * (||f|| + eps))


def check_tau(tau: float) -> float:
    if not (isinstance(tau, int | float) and math.isfinite(tau) and tau > 0):
        raise UserError(f"--tau must be a finite number > 0, got {tau}; the paper uses 0.04")
    return float(tau)


def check_penalty(lam: float) -> float:
    if not (isinstance(lam, int | float) and math.isfinite(lam) and lam >= 0):
        raise UserError(f"--penalty (lambda) must be a finite number >= 0, got {lam}")
    return float(lam)


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


@LOSSES.register("ce")
def _make_ce(**_: float) -> LossFn:
    return cross_entropy


@LOSSES.register("logitnorm")
def _make_logitnorm(tau: float = 0.04, **_: float) -> LossFn:
    tau = check_tau(tau)
    return lambda logits, targets: logit_norm_loss(logits, targets, tau)


@LOSSES.register("logit-penalty")
def _make_penalty(penalty: float = 0.1, **_: float) -> LossFn:
    lam = check_penalty(penalty)
    return lambda logits, targets: logit_penalty(logits, targets, lam)


def make_loss(name: str, tau: float = 0.04, penalty: float = 0.1) -> LossFn:
    """The loss function registered as ``name``, with its hyper-parameters validated."""
    return LOSSES.get(name)(tau=tau, penalty=penalty)
