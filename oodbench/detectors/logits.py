"""Detectors that read only the logits f (N x K). Nothing is fitted."""

from __future__ import annotations

import torch

from oodbench.detectors.base import Detector, as_float, energy, register
from oodbench.detectors.params import Param
from oodbench.models.outputs import Outputs

# Tuning grids marked "OpenOOD" are the postprocessor_sweep lists of OpenOOD's
# configs/postprocessors/<name>.yml (ebo.yml at 55a31867, gen.yml at 70f5d449).


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
    paper = "Liu et al., NeurIPS 2020"
    temperature = Param(
        1.0, low=0, low_open=True, grid=(1.0, 10.0, 100.0, 1000.0), help="T in T logsumexp(f / T)"
    )  # grid: OpenOOD

    def score(self, outputs: Outputs) -> torch.Tensor:
        return energy(as_float(outputs.logits), self.temperature)


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
    paper = "Liu, Lochman & Zach, CVPR 2023"
    gamma = Param(
        0.1,
        low=0,
        low_open=True,
        grid=(0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0),
        help="γ, the exponent",
    )  # grid: OpenOOD
    m = Param(
        100, low=1, grid=(10, 50, 100, 200, 500, 1000), help="M, classes summed (capped at K)"
    )  # grid: OpenOOD

    def score(self, outputs: Outputs) -> torch.Tensor:
        p = as_float(outputs.logits).softmax(dim=1)
        top = p.topk(min(self.m, p.shape[1]), dim=1).values
        g = self.gamma
        return -(top.pow(g) * (1 - top).pow(g)).sum(dim=1)
