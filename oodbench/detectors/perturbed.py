"""Detectors that push the cached features through the linear head again after changing them:
VRA (two-sided activation clipping) and MC dropout on the penultimate features.

Both follow OpenOOD v1.5 (``vra_postprocessor.py``; ``dropout_postprocessor.py`` with
``networks/dropout_net.py``); the commits read are cited in docs/detectors.md.
"""

from __future__ import annotations

import numpy as np
import torch

from oodbench.detectors.base import Detector, as_float, register
from oodbench.detectors.features import _HeadEnergy
from oodbench.detectors.params import Param
from oodbench.errors import UserError
from oodbench.models.outputs import Outputs


@register
class VRA(_HeadEnergy):
    """Energy of W clip(h, t_low, t_high) + b, t_low and t_high the low and high percentiles of
    every training activation (OpenOOD's VRA: values below t_low are raised to it)."""

    name = "vra"
    paper = "Xu et al., NeurIPS 2023"
    # grids: OpenOOD configs/postprocessors/vra.yml postprocessor_sweep (a88cd107)
    percentile_high = Param(
        90.0,
        low=0,
        high=100,
        grid=(85.0, 90.0, 95.0, 99.0),
        help="p_high, clip above the p_high-th percentile of training activations",
    )
    percentile_low = Param(
        10.0,
        low=0,
        high=100,
        grid=(1.0, 5.0, 10.0, 15.0),
        help="p_low, raise values below the p_low-th percentile to it",
    )

    def fit(self, train: Outputs) -> Detector:
        if self.percentile_low >= self.percentile_high:
            raise UserError(
                f"vra: percentile_low ({self.percentile_low:g}) must be below "
                f"percentile_high ({self.percentile_high:g})"
            )
        flat = train.features.float().reshape(-1).numpy()
        self.low = float(np.percentile(flat, self.percentile_low))
        self.high = float(np.percentile(flat, self.percentile_high))
        return super().fit(train)

    def score(self, outputs: Outputs) -> torch.Tensor:
        return self.head_energy(as_float(outputs.features).clamp(min=self.low, max=self.high))


@register
class MCDropout(Detector):
    """max_k softmax(mean_t (W drop_t(h) + b))_k: MSP of the logits averaged over ``times``
    dropout masks (rate p, kept units scaled by 1 / (1 - p)) on the penultimate features h.
    Masks come from a generator seeded with ``seed``, so scores are reproducible."""

    name = "mc-dropout"
    needs = ("features", "head")
    paper = "Gal & Ghahramani, ICML 2016 (as OpenOOD v1.5's dropout postprocessor)"
    p = Param(0.5, low=0, high=1, high_open=True, help="dropout rate on the features")
    times = Param(5, low=1, help="stochastic passes averaged")
    seed = Param(0, low=0, help="seed of the dropout masks")

    def fit(self, train: Outputs) -> Detector:
        self.weight, self.bias = (as_float(t) for t in train.head())
        return super().fit(train)

    def score(self, outputs: Outputs) -> torch.Tensor:
        h = as_float(outputs.features)
        gen = torch.Generator().manual_seed(self.seed)
        total = torch.zeros(len(h), self.weight.shape[0], dtype=torch.float64)
        for _ in range(self.times):
            keep = torch.rand(h.shape, generator=gen, dtype=torch.float64) >= self.p
            total += (h * keep / (1 - self.p)) @ self.weight.T + self.bias
        return (total / self.times).softmax(dim=1).max(dim=1).values
