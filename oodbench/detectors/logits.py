"""Detectors that read only the logits f (N x K). Nothing is fitted."""

from __future__ import annotations

from typing import Any

import torch

from oodbench.detectors.base import Detector, as_float, energy, register
from oodbench.errors import UserError
from oodbench.models.outputs import Outputs


@register
class MSP(Detector):
    """Maximum softmax probability: max_k softmax(f)_k."""

    name = "msp"
    paper = "Hendrycks & Gimpel, ICLR 2017"

    def score(self, outputs: Outputs) -> torch.Tensor:
        return as_float(outputs.logits).softmax(dim=1).max(dim=1).values


@register
class MaxLogit(Detector):
    """Maximum logit: max_k f_k."""

    name = "maxlogit"
    paper = "Hendrycks et al., ICML 2022 (scaling OOD detection)"

    def score(self, outputs: Outputs) -> torch.Tensor:
        return as_float(outputs.logits).max(dim=1).values


@register
class Energy(Detector):
    """Negative energy: T * logsumexp(f / T). Default T = 1."""

    name = "energy"
    defaults = {"temperature": 1.0}
    paper = "Liu et al., NeurIPS 2020"

    def score(self, outputs: Outputs) -> torch.Tensor:
        return energy(as_float(outputs.logits), self.hp["temperature"])


@register
class Entropy(Detector):
    """Negative predictive entropy: sum_k p_k log p_k with p = softmax(f)."""

    name = "entropy"
    paper = "Hendrycks & Gimpel, ICLR 2017 (entropy baseline)"

    def score(self, outputs: Outputs) -> torch.Tensor:
        log_p = as_float(outputs.logits).log_softmax(dim=1)
        return (log_p.exp() * log_p).sum(dim=1)


@register
class GEN(Detector):
    """Generalized entropy: -sum over the M largest p_k of p_k^gamma (1 - p_k)^gamma.

    Defaults gamma = 0.1 and M = 100 (capped at K), from Liu, Lochman & Zach, CVPR 2023.
    """

    name = "gen"
    defaults = {"gamma": 0.1, "m": 100}
    paper = "Liu, Lochman & Zach, CVPR 2023"

    def check(self, key: str, value: Any) -> None:
        super().check(key, value)
        if key == "m" and int(value) != value:
            raise UserError(f"gen: m must be a whole number of classes, got {value}")

    def score(self, outputs: Outputs) -> torch.Tensor:
        p = as_float(outputs.logits).softmax(dim=1)
        top = p.topk(min(int(self.hp["m"]), p.shape[1]), dim=1).values
        g = self.hp["gamma"]
        return -(top.pow(g) * (1 - top).pow(g)).sum(dim=1)
