"""Detectors that measure where h lies relative to a direction or subspace of the training
features: NECO (principal subspace), ViM's residual alone, NCI (class-weight direction).

Formulas follow the references cited in docs/detectors.md (pytorch-ood ``neco.py``, OpenOOD
``residual_postprocessor.py`` and ``nci_postprocessor.py``); ``tests/test_detectors_b.py``
re-implements each reference in its own style and compares.
"""

from __future__ import annotations

import torch

from oodbench.detectors.base import Detector, as_float, register
from oodbench.detectors.features import _one_thread
from oodbench.detectors.params import Param
from oodbench.errors import UserError
from oodbench.models.outputs import Outputs

_EXPLAINED = 0.90  # NECO's automatic subspace: the top axes explaining 90% of the variance
_TINY = 1e-12


@register
class NECO(Detector):
    """||P_d^T (s - m)|| / ||s||, s = the standardised feature ((h - mean) / std per unit, as
    sklearn's StandardScaler), P_d = its top-d principal axes on the training split, m = their
    mean. dim = 0 takes the fewest axes explaining 90% of the variance (the authors'
    evaluation code); ``max_logit`` multiplies by max_k f_k (the paper's choice for ViTs)."""

    name = "neco"
    needs = ("features", "logits")
    paper = "Ben Ammar et al., ICLR 2024"
    # grid: pytorch-ood's NECO hyperparameter_space (neco.py @ e8f7ac67), plus the 90% rule
    dim = Param(
        0,
        low=0,
        grid=(0, 16, 32, 64, 100, 128, 256, 512, 768),
        help="principal axes kept (capped at D); 0 = those explaining 90% of the variance",
    )
    max_logit = Param(False, help="multiply by the maximum logit")

    def _standardise(self, features: torch.Tensor) -> torch.Tensor:
        return (as_float(features) - self.mean) / self.scale

    def fit(self, train: Outputs) -> Detector:
        h = as_float(train.features)
        self.mean = h.mean(dim=0)
        std = h.std(dim=0, unbiased=False)
        # Constant units (dead ReLUs) are left unscaled, as StandardScaler does.
        self.scale = torch.where(std < 10 * torch.finfo(torch.float64).eps, 1.0, std)
        s = self._standardise(train.features)
        self.centre = s.mean(dim=0)
        c = s - self.centre
        with _one_thread(c.shape[1]):
            vals, vecs = torch.linalg.eigh(c.T @ c / max(1, len(c) - 1))
        vals, vecs = vals.flip(0).clamp(min=0), vecs.flip(1)  # descending variance
        d = min(self.dim, len(vals))
        if d == 0:
            explained = vals.cumsum(0) / vals.sum().clamp(min=_TINY)
            d = int((explained < _EXPLAINED).sum()) + 1
        self.axes = vecs[:, : min(d, len(vals))]
        return super().fit(train)

    def score(self, outputs: Outputs) -> torch.Tensor:
        s = self._standardise(outputs.features)
        ratio = ((s - self.centre) @ self.axes).norm(dim=1) / s.norm(dim=1).clamp(min=_TINY)
        if self.max_logit:
            ratio = ratio * as_float(outputs.logits).max(dim=1).values
        return ratio


def _default_dim(d: int) -> int:
    """ViM's rule (the authors' code): 1000 if D >= 2048, 512 if D >= 768, else D // 2."""
    return 1000 if d >= 2048 else 512 if d >= 768 else d // 2


@register
class Residual(Detector):
    """-||P_perp (h - o)||, o = -pinv(W) b, P_perp the projection on the D - dim least-variance
    directions of the training features taken about o: ViM's residual without the energy.
    dim = 0 applies ViM's rule (1000 / 512 / D // 2 by D)."""

    name = "residual"
    needs = ("features", "head")
    paper = "Wang et al., CVPR 2022 (ViM's residual; OpenOOD's residual postprocessor)"
    dim = Param(0, low=0, help="principal subspace size; 0 = ViM's rule from D")

    def fit(self, train: Outputs) -> Detector:
        w, b = (as_float(t) for t in train.head())
        with _one_thread(w.shape[1]):
            self.origin = -torch.linalg.pinv(w) @ b
        h = as_float(train.features) - self.origin
        d = h.shape[1]
        dim = self.dim or _default_dim(d)
        if not 0 < dim < d:
            raise UserError(
                f"residual: dim must be between 1 and {d - 1} for {d}-d features, got {dim}"
            )
        with _one_thread(d):
            _, vecs = torch.linalg.eigh(h.T @ h / len(h))  # ascending eigenvalues
        self.null_space = vecs[:, : d - dim]
        return super().fit(train)

    def score(self, outputs: Outputs) -> torch.Tensor:
        return -((as_float(outputs.features) - self.origin) @ self.null_space).norm(dim=1)


@register
class NCI(Detector):
    """w_c . (h - mu) / ||h - mu||_2 + alpha ||h||_1: c = the predicted class, w_c its (not
    normalised) weight row, mu the mean training feature."""

    name = "nci"
    needs = ("features", "logits", "head")
    paper = "Liu & Qin, CVPR 2025"
    # grid: OpenOOD configs/postprocessors/nci.yml postprocessor_sweep (13d8964b)
    alpha = Param(
        0.0001,
        low=0,
        grid=(0.0001, 0.001, 0.01, 0.1),
        help="weight of the feature L1 norm",
    )

    def fit(self, train: Outputs) -> Detector:
        self.weight = as_float(train.head()[0])
        self.mean = as_float(train.features).mean(dim=0)
        return super().fit(train)

    def score(self, outputs: Outputs) -> torch.Tensor:
        h = as_float(outputs.features)
        centred = h - self.mean
        w = self.weight[outputs.logits.argmax(dim=1)]
        cos = (w * centred).sum(dim=1) / centred.norm(dim=1).clamp(min=_TINY)
        return cos + self.alpha * h.abs().sum(dim=1)
