"""Neural relation graph (Kim et al., NeurIPS 2023): how strongly a sample is related to the
whole training set, through both its features and its predicted class distribution.

The reference is OpenOOD's ``relation_postprocessor.py`` (code borrowed from
snu-mllab/Neural-Relation-Graph); the commit read is cited in docs/detectors.md.
"""

from __future__ import annotations

import torch

from oodbench.detectors.base import Detector, register
from oodbench.detectors.params import Param
from oodbench.models.outputs import Outputs

_EDGE_CUTOFF = 0.03  # the reference's fixed ``thres``: edges at most this strong are dropped
# query rows per chunk: a (chunk x bank) float32 block near 16 MiB, which stays in cache better
# than 64 MiB (1.5x faster for 8,000 x 55,000, same values bit for bit)
_BLOCK_ELEMENTS = 2**22


def _normalise(features: torch.Tensor) -> torch.Tensor:
    h = features.float()
    return h / torch.sqrt((h**2).sum(dim=1, keepdim=True) + 1e-10)  # the reference's epsilon


@register
class Relation(Detector):
    """sum_j r_j^pow over every training sample j, r_j = max(0, z . z_j) * (p . p_j) with z the
    l2-normalised feature and p = softmax(f); edges with r_j <= 0.03 count as zero."""

    name = "relation"
    needs = ("features", "logits")
    paper = "Kim et al., NeurIPS 2023"
    # grid: OpenOOD configs/postprocessors/relation.yml postprocessor_sweep (8bca8366)
    pow = Param(1, low=1, grid=(1, 2, 4, 6, 8), help="exponent applied to each edge")

    def fit(self, train: Outputs) -> Detector:
        self.bank_z = _normalise(train.features)
        self.bank_p = train.logits.float().softmax(dim=1)
        return super().fit(train)

    def score(self, outputs: Outputs) -> torch.Tensor:
        z = _normalise(outputs.features)
        p = outputs.logits.float().softmax(dim=1)
        out = torch.empty(len(z), dtype=torch.float64)
        step = max(1, _BLOCK_ELEMENTS // max(1, len(self.bank_z)))
        for i in range(0, len(z), step):
            rel = z[i : i + step] @ self.bank_z.T
            rel.mul_(p[i : i + step] @ self.bank_p.T)  # p . p_j >= 0: negative z . z_j stay <= 0
            # one pass for the reference's max(0, .) and its cutoff: r <= 0.03 (negatives too)
            # become 0, the rest stay
            torch.threshold_(rel, _EDGE_CUTOFF, 0.0)
            if self.pow != 1:
                rel.pow_(self.pow)
            out[i : i + step] = rel.sum(dim=1, dtype=torch.float64)
        return out
