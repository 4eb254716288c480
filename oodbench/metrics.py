"""OOD and calibration metrics on scikit-learn. Every function returns a fraction in [0, 1].

Scores follow the detector convention: higher means more in-distribution. ``positive`` picks
which class counts as positive for FPR at a fixed TPR:

* ``"id"`` (default, the LogitNorm paper / Outlier Exposure code): FPR95 is the fraction of OOD
  samples accepted at the threshold that keeps 95% of ID samples.
* ``"ood"`` (OpenOOD v1.5, pytorch-ood): FPR95 is the fraction of ID samples rejected at the
  threshold that detects 95% of OOD samples.

AUROC does not depend on the convention; AUPR-In (ID positive) and AUPR-Out (OOD positive) are
both always reported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from oodbench.config import POSITIVES, check_choice
from oodbench.errors import UserError

ArrayLike = Any  # numpy array, torch tensor or sequence


def to_numpy(values: ArrayLike, dtype: Any = np.float64) -> np.ndarray:
    """Accept tensors (any device) or arrays; return a float64 (or ``dtype``) numpy array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def _labelled(id_scores: ArrayLike, ood_scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate scores with labels 1 = ID, 0 = OOD, after checking both sides are usable."""
    s_id, s_ood = to_numpy(id_scores).ravel(), to_numpy(ood_scores).ravel()
    if s_id.size == 0 or s_ood.size == 0:
        raise UserError(
            f"need ID and OOD scores to compute OOD metrics, got {s_id.size} ID and "
            f"{s_ood.size} OOD samples; check the datasets are not empty"
        )
    scores = np.concatenate([s_id, s_ood])
    if not np.all(np.isfinite(scores)):
        raise UserError("detector produced NaN or infinite scores; check the model and inputs")
    labels = np.concatenate([np.ones(s_id.size), np.zeros(s_ood.size)])
    return labels, scores


def auroc(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Area under the ROC curve; the same whichever class is positive."""
    labels, scores = _labelled(id_scores, ood_scores)
    return float(roc_auc_score(labels, scores))


def aupr_in(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Average precision with ID as the positive class (the paper's "AUPR")."""
    labels, scores = _labelled(id_scores, ood_scores)
    return float(average_precision_score(labels, scores))


def aupr_out(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Average precision with OOD as the positive class (scores negated)."""
    labels, scores = _labelled(id_scores, ood_scores)
    return float(average_precision_score(1 - labels, -scores))


def fpr_at_tpr(
    id_scores: ArrayLike, ood_scores: ArrayLike, tpr: float = 0.95, positive: str = "id"
) -> float:
    """FPR at the first point of scikit-learn's ROC curve whose TPR reaches ``tpr``.

    With ties, the ROC curve has one point per distinct threshold, so the first point with
    TPR >= ``tpr`` is the strictest threshold that accepts at least that fraction of positives.
    """
    check_choice("positive", positive, POSITIVES)
    if not 0.0 < tpr <= 1.0:
        raise UserError(f"tpr must be in (0, 1], got {tpr}")
    labels, scores = _labelled(id_scores, ood_scores)
    if positive == "ood":
        labels, scores = 1 - labels, -scores
    fpr_curve, tpr_curve, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fpr_curve[np.argmax(tpr_curve >= tpr - 1e-12)])


def ood_metrics(
    id_scores: ArrayLike, ood_scores: ArrayLike, positive: str = "id"
) -> dict[str, float]:
    """The four numbers of one metrics row, as fractions."""
    return {
        "fpr95": fpr_at_tpr(id_scores, ood_scores, 0.95, positive),
        "auroc": auroc(id_scores, ood_scores),
        "aupr_in": aupr_in(id_scores, ood_scores),
        "aupr_out": aupr_out(id_scores, ood_scores),
    }


def id_accuracy(logits: ArrayLike, labels: ArrayLike) -> float:
    """Top-1 accuracy from logits or probabilities (N x K) and integer labels."""
    pred = to_numpy(logits).argmax(axis=1)
    return float(np.mean(pred == to_numpy(labels, np.int64)))


def ece(probs: ArrayLike, labels: ArrayLike, bins: int = 15) -> float:
    """Expected calibration error: 15 equal-width bins (lo, hi] on the max softmax probability.

    ECE = sum_b |B_b| / N * |acc(B_b) - conf(B_b)| (Guo et al., ICML 2017).
    """
    p = to_numpy(probs)
    if p.ndim != 2 or p.shape[0] == 0:
        raise UserError(f"ece needs an N x K probability matrix, got shape {p.shape}")
    conf, correct = p.max(axis=1), p.argmax(axis=1) == to_numpy(labels, np.int64)
    # np.digitize with right=True puts conf in (edge[i-1], edge[i]]; conf == 0 joins bin 1.
    which = np.clip(np.digitize(conf, np.linspace(0.0, 1.0, bins + 1), right=True), 1, bins)
    total = 0.0
    for b in range(1, bins + 1):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(total)


def softmax(logits: ArrayLike, temperature: float = 1.0) -> np.ndarray:
    z = to_numpy(logits) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: ArrayLike, labels: ArrayLike, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)``."""
    z = to_numpy(logits) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(z)), to_numpy(labels, np.int64)].mean())


def fit_temperature(logits: ArrayLike, labels: ArrayLike) -> float:
    """Temperature minimising the NLL on held-out ID validation logits (Guo et al., 2017).

    Fit it on the run's validation split, never on the test split. The search is over
    log T in [log 0.01, log 100], so T stays positive and the 1-D problem is solved exactly.
    """
    z, y = to_numpy(logits), to_numpy(labels, np.int64)
    if z.ndim != 2 or z.shape[0] == 0:
        raise UserError("fit_temperature needs a non-empty N x K logit matrix (validation split)")
    res = minimize_scalar(
        lambda log_t: nll(z, y, math.exp(log_t)),
        bounds=(math.log(0.01), math.log(100.0)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(res.x))
