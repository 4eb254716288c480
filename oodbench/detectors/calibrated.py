"""Detectors that re-read the logits through something fitted on ID data: temperature-scaled
MSP, KL matching and OpenMax. Nothing here needs the features or the head.

Formulas and defaults follow OpenOOD v1.5 (``openood/postprocessors/``); the commits read are
cited in docs/detectors.md, and ``tests/test_detectors_a.py`` re-implements each reference
formula in its own style and compares.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch

from oodbench.detectors.base import Detector, as_float, register
from oodbench.detectors.params import Param
from oodbench.errors import UserError
from oodbench.models.outputs import Outputs

_T_BOUNDS = (0.01, 100.0)


def _labels(outputs: Outputs, name: str, split: str) -> torch.Tensor:
    if (outputs.labels < 0).any():
        raise UserError(f"{name} needs class labels for the {split} outputs it is fitted on")
    return outputs.labels


@register
class TempScale(Detector):
    """max_k softmax(f / T)_k with T minimising the NLL of the ID validation split (Guo et al.,
    2017). Fitted on the validation split (the training split when the run holds none out)."""

    name = "tempscale"
    paper = "Guo et al., ICML 2017"
    fit_split: ClassVar[str] = "val"

    def fit(self, train: Outputs) -> Detector:
        from scipy.optimize import minimize_scalar

        z, y = as_float(train.logits), _labels(train, self.name, "validation")
        picked = z.gather(1, y[:, None])[:, 0]

        def nll(log_t: float) -> float:
            t = math.exp(log_t)
            return float((torch.logsumexp(z / t, dim=1) - picked / t).mean())

        # NLL is convex in 1/T, so the bounded 1-D search finds the minimum; bounds as in
        # metrics.fit_temperature (the summary's T), so both report the same temperature.
        lo, hi = (math.log(b) for b in _T_BOUNDS)
        res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
        self.temperature = math.exp(float(res.x))
        return super().fit(train)

    def score(self, outputs: Outputs) -> torch.Tensor:
        return (as_float(outputs.logits) / self.temperature).softmax(dim=1).max(dim=1).values


@register
class KLMatching(Detector):
    """-min_c KL(p(x) || d_c), d_c = the mean softmax of the ID validation samples predicted as
    class c (Hendrycks et al., 2022; OpenOOD fits the templates on the validation split too)."""

    name = "klm"
    paper = "Hendrycks et al., ICML 2022 (scaling OOD detection)"
    fit_split: ClassVar[str] = "val"

    def fit(self, train: Outputs) -> Detector:
        p = as_float(train.logits).softmax(dim=1)
        pred = p.argmax(dim=1)
        counts = torch.bincount(pred, minlength=p.shape[1])
        sums = torch.zeros_like(p[: p.shape[1]]).index_add_(0, pred, p)
        used = counts > 0  # a class nobody is predicted as has no template (OpenOOD: NaN)
        templates = sums[used] / counts[used, None]
        # A template entry that underflowed to 0 would make every KL infinite.
        self.log_templates = templates.clamp(min=torch.finfo(torch.float64).tiny).log()
        return super().fit(train)

    def score(self, outputs: Outputs) -> torch.Tensor:
        log_p = as_float(outputs.logits).log_softmax(dim=1)
        p = log_p.exp()
        # KL(p || d_c) = sum_k p_k log p_k - sum_k p_k log d_ck, for every c at once.
        neg_entropy = torch.xlogy(p, p).sum(dim=1, keepdim=True)
        kl = neg_entropy - p @ self.log_templates.T
        return -kl.min(dim=1).values


class _Weibull:
    """Weibull fits of the largest distances per class, as libmr's ``FitHigh`` does them:
    the tail is shifted by 10000 - min(tail), then a two-parameter Weibull (loc 0) is fitted
    by maximum likelihood; ``cdf`` applies the same shift."""

    SHIFT = 10000.0  # libmr's translate_amount

    def __init__(self, tails: list[np.ndarray]) -> None:
        from scipy.optimize import brentq

        self.offset, self.shape, self.scale = (np.zeros(len(tails)) for _ in range(3))
        for c, tail in enumerate(tails):
            x = tail + self.SHIFT - tail.min()
            self.offset[c] = self.SHIFT - tail.min()
            m = x.max()
            y = np.log(x / m)  # <= 0; the shape equation is scale free in x / m
            if np.ptp(y) < 1e-12:  # one distinct distance: a step at it
                self.shape[c], self.scale[c] = 1e6, m
                continue

            def equation(k: float, y: np.ndarray = y) -> float:
                w = np.exp(k * y)
                return float((w * y).sum() / w.sum() - 1.0 / k - y.mean())

            k = brentq(equation, 1e-6, 1e9, xtol=1e-10, rtol=1e-12)
            self.shape[c] = k
            self.scale[c] = m * np.mean(np.exp(k * y)) ** (1.0 / k)

    def cdf(self, dist: torch.Tensor) -> torch.Tensor:
        """N x C distances -> N x C Weibull CDF values (w-scores) in [0, 1]."""
        x = (dist + torch.from_numpy(self.offset)).clamp(min=0) / torch.from_numpy(self.scale)
        return 1.0 - torch.exp(-x.pow(torch.from_numpy(self.shape)))


@register
class OpenMax(Detector):
    """OpenMax on the logits v (the activation vector): per class c, the mean logit vector
    MAV_c of correctly classified training samples and a Weibull fit of the ``tail`` largest
    distances ||v - MAV_c||; the ``alpha`` top classes are revised, v_c <- v_c (1 - w_c ω_c),
    and the removed mass becomes an unknown class. The score is ``-P(unknown)``, as OpenOOD v1.5
    (``openmax_postprocessor.py`` since 63fb6c2, "fix openmax"); ``statistic="max-known"`` takes
    the largest of the C known OpenMax probabilities instead."""

    name = "openmax"
    needs = ("logits",)
    paper = "Bendale & Boult, CVPR 2016"
    alpha = Param(3, low=1, help="top classes revised (capped at K)")
    tail = Param(20, low=2, help="largest training distances per class in the Weibull fit")
    statistic = Param("unknown", choices=("unknown", "max-known"),
                      help="unknown: -P(unknown), as OpenOOD v1.5; max-known: the largest of "
                      "the C known probabilities")  # fmt: skip

    def fit(self, train: Outputs) -> Detector:
        v, y = as_float(train.logits), _labels(train, self.name, "training")
        right = v.argmax(dim=1) == y
        self.mavs = torch.zeros(v.shape[1], v.shape[1], dtype=torch.float64)
        tails, self.present = [], torch.zeros(v.shape[1], dtype=torch.bool)
        for c in range(v.shape[1]):
            rows = v[(y == c) & right]
            if len(rows) == 0:  # OpenOOD would fail here; use every sample of the class
                rows = v[y == c]
            if len(rows) == 0:
                tails.append(np.zeros(1))  # no such class: never revised (w = 0 below)
                continue
            self.present[c] = True
            self.mavs[c] = rows.mean(dim=0)
            dist = (rows - self.mavs[c]).norm(dim=1).numpy()
            tails.append(np.sort(dist)[-self.tail :])
        self.weibull = _Weibull(tails)
        return super().fit(train)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """N x (C + 1) OpenMax probabilities, the unknown class last."""
        v = as_float(logits)
        n, k = v.shape
        alpha = min(self.alpha, k)
        ranked = v.argsort(dim=1, descending=True)[:, :alpha]
        weights = (alpha - torch.arange(alpha, dtype=torch.float64)) / alpha  # 1, ..., 1/alpha
        omega = torch.zeros_like(v).scatter_(1, ranked, weights.expand(n, alpha))
        w = self.weibull.cdf(torch.cdist(v, self.mavs)) * self.present
        revised = v * (1 - w * omega)
        unknown = (v - revised).sum(dim=1, keepdim=True)
        # softmax = exp(.) / sum exp(.) of OpenOOD, shifted by the max so it cannot overflow.
        return torch.cat([revised, unknown], dim=1).softmax(dim=1)

    def score(self, outputs: Outputs) -> torch.Tensor:
        probs = self.probabilities(outputs.logits)
        if self.statistic == "unknown":
            return -probs[:, -1]
        return probs[:, :-1].max(dim=1).values
