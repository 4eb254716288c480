"""Density detectors on the penultimate features: Mahalanobis++ (class Gaussians on
l2-normalised features) and OpenOOD v1.5's tied-covariance Gaussian mixture.

Formulas follow the references cited in docs/detectors.md (mueller-mp/maha-norm,
OpenOOD ``gmm_postprocessor.py``); ``tests/test_detectors_b.py`` re-implements each reference
in its own style and compares.
"""

from __future__ import annotations

import numpy as np
import torch

from oodbench.detectors import streaming
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
        if self.axes is None or not streaming.large(features):
            h = as_float(features).numpy()
            return h if self.axes is None else h @ self.axes
        n, d = features.shape
        axes = torch.from_numpy(self.axes)
        return torch.cat([as_float(features[r]) @ axes for r in streaming.row_chunks(n, d)]).numpy()

    def _axes(self, features: torch.Tensor, dim: int) -> np.ndarray:
        """The top ``dim`` principal axes (D x dim): scikit-learn's PCA, or for a matrix too
        large to copy the eigenvectors of its covariance from one pass (the same subspace;
        each axis's sign set so its largest entry is positive, where PCA's follows its SVD)."""
        from sklearn.decomposition import PCA

        if not streaming.large(features):
            return PCA(n_components=dim).fit(as_float(features).numpy()).components_.T
        labels = torch.zeros(len(features), dtype=torch.int64)
        _, _, cov = streaming.class_moments(features, labels)
        vecs = torch.linalg.eigh(cov).eigenvectors.flip(1)[:, :dim]
        signs = vecs.gather(0, vecs.abs().argmax(dim=0, keepdim=True)).sign()
        return (vecs * signs).numpy()

    def fit(self, train: Outputs) -> Detector:
        from sklearn.mixture import GaussianMixture

        n, d = train.features.shape
        k = min(self.components, n)
        self.axes = None
        if self.dim:
            self.axes = self._axes(train.features, min(self.dim, n, d))
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
