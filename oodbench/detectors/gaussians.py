"""Density detectors on the penultimate features: Mahalanobis++ (class Gaussians on
l2-normalised features) and OpenOOD v1.5's tied-covariance Gaussian mixture.

Formulas follow the references cited in docs/detectors.md (mueller-mp/maha-norm,
OpenOOD ``gmm_postprocessor.py``); ``tests/test_detectors_b.py`` re-implements each reference
in its own style and compares.
"""

from __future__ import annotations

import numpy as np
import torch

from oodbench.detectors.base import Detector, as_float, register
from oodbench.detectors.features import _Gaussian, _train_labels
from oodbench.detectors.params import Param
from oodbench.models.outputs import Outputs


def unit_rows(features: torch.Tensor) -> torch.Tensor:
    """h / ||h||_2 per row in float64; an all-zero row stays zero instead of becoming NaN."""
    h = as_float(features)
    norm = h.norm(dim=1, keepdim=True)
    return h / torch.where(norm > 0, norm, 1.0)


@register
class MahalanobisNorm(Detector):
    """Mahalanobis++: max_c -(z - mu_c)^T S^+ (z - mu_c) with z = h / ||h||_2; class means and
    one shared (pooled, divided by N) covariance of the normalised training features."""

    name = "mahalanobis-norm"
    needs = ("features",)
    paper = "Mueller & Hein, 2025 (arXiv:2505.18032)"

    def fit(self, train: Outputs) -> Detector:
        self.gauss = _Gaussian(unit_rows(train.features), _train_labels(train, self.name))
        return super().fit(train)

    def score(self, outputs: Outputs) -> torch.Tensor:
        return -self.gauss.distances(unit_rows(outputs.features)).min(dim=1).values


@register
class GMM(Detector):
    """log sum_k pi_k exp(-(z - mu_k)^T P (z - mu_k) / 2): a Gaussian mixture with one tied
    covariance (sklearn, random_state 0) fitted to z = h V, V = the top ``dim`` principal axes
    of the training features (projected without centring, as OpenOOD does). 50 components on
    50 dims: the setting of OpenOOD v1.5's only weighted layer."""

    name = "gmm"
    needs = ("features",)
    paper = "OpenOOD v1.5 (Zhang et al., 2023), gmm postprocessor"
    components = Param(50, low=1, help="mixture components (capped at the training samples)")
    dim = Param(
        50, low=0, help="principal axes kept (capped at D); 0 = all D features, no projection"
    )

    def _project(self, features: torch.Tensor) -> np.ndarray:
        h = as_float(features).numpy()
        return h if self.axes is None else h @ self.axes

    def fit(self, train: Outputs) -> Detector:
        from sklearn.decomposition import PCA
        from sklearn.mixture import GaussianMixture

        h = as_float(train.features).numpy()
        k = min(self.components, len(h))
        self.axes = None
        if self.dim:
            dim = min(self.dim, *h.shape)
            self.axes = PCA(n_components=dim).fit(h).components_.T
        z = self._project(train.features)
        gmm = GaussianMixture(k, covariance_type="tied", random_state=0).fit(z)
        self.means = torch.from_numpy(gmm.means_)
        self.precision = torch.from_numpy(gmm.precisions_)
        self.log_weights = torch.from_numpy(np.log(gmm.weights_))
        return super().fit(train)

    def score(self, outputs: Outputs) -> torch.Tensor:
        z = torch.from_numpy(self._project(outputs.features))
        zp, mp = z @ self.precision, self.means @ self.precision
        maha = (zp * z).sum(1, keepdim=True) - 2 * zp @ self.means.T + (mp * self.means).sum(1)
        # logsumexp instead of OpenOOD's log(sum exp(.) + 1e-45): equal wherever their float32
        # sum does not underflow, and still ordered where it does (theirs ties at -103.28).
        return torch.logsumexp(self.log_weights - maha / 2, dim=1)
