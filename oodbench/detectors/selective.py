"""Risk-coverage areas of selective classification, from counts per distinct score (the
score of any detector judged on correct vs wrong predictions; oodbench.metrics wraps them).

A confidence score accepts the samples at or above a threshold. One point of the risk-coverage
curve per **distinct** score (tied samples are accepted or rejected together, as in Traub et
al.'s reference code, fd-shifts ``rc_stats_utils``), integrated by the trapezoid rule:

* AURC (Geifman & El-Yaniv 2017; Geifman et al. 2019): selective risk = errors accepted /
  accepted; the curve is extended flat from its last point to coverage 0.
* AUGRC (Traub et al., NeurIPS 2024): generalized risk = errors accepted / all samples; it
  ends at (0, 0).
* The optimal AURC (for E-AURC) is the AURC of the same predictions ranked perfectly (all
  correct samples first, every score distinct); its large-sample limit is Geifman et al.'s
  closed form r + (1 - r) ln(1 - r) with r the error rate.

Everything works on a batch of count vectors at once (one row per bootstrap resample), so the
point value and the bootstrap share one definition. No import from the rest of oodbench.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma


def rc_areas(h_right: np.ndarray, h_wrong: np.ndarray) -> tuple[np.ndarray, ...]:
    """AURC, AUGRC and the optimal AURC (each of shape (b,)) from per-slot counts (b x u) of
    correct and wrong samples, slots in ascending score order (slots with no sample allowed).

    The threshold at slot j accepts the samples at or above it (suffix sums of the counts).
    The trapezoid between slot j and the next point has width h_j / n (the coverage lost), so
    each area is a weighted sum of the risk at j and at the next slot; an empty slot j + 1 has
    the counts of the next non-empty one, and past the last non-empty slot L the selective
    risk stays flat down to coverage 0, which adds h_L * risk_L = the wrong samples of slot L.
    About a dozen passes over the b x u arrays: the bootstrap calls this for every resample."""
    h_right, h_wrong = np.asarray(h_right, np.float64), np.asarray(h_wrong, np.float64)
    n_right, n_wrong = h_right.sum(axis=1), h_wrong.sum(axis=1)
    n = n_right + n_wrong
    h = h_right + h_wrong
    accepted = np.cumsum(h[:, ::-1], axis=1)[:, ::-1]  # samples with score >= slot j
    errors = np.cumsum(h_wrong[:, ::-1], axis=1)[:, ::-1]  # wrong ones among them
    risk = np.zeros_like(h)
    np.divide(errors, accepted, out=risk, where=accepted > 0)
    last = h.shape[1] - 1 - np.argmax(h[:, ::-1] > 0, axis=1)  # last non-empty slot
    flat = h_wrong[np.arange(h.shape[0]), last]
    pairs = np.einsum("bu,bu->b", h, risk) + np.einsum("bu,bu->b", h[:, :-1], risk[:, 1:])
    with np.errstate(invalid="ignore", divide="ignore"):
        aurc = (pairs + flat) / (2 * n)
        general = np.einsum("bu,bu->b", h, errors) + np.einsum("bu,bu->b", h[:, :-1], errors[:, 1:])
        augrc = general / (2 * n * n)
    return aurc, augrc, optimal_aurc(n_right, n)


def _harmonic(m: np.ndarray) -> np.ndarray:
    return digamma(np.asarray(m, np.float64) + 1) + np.euler_gamma


def optimal_aurc(n_right: np.ndarray, n: np.ndarray) -> np.ndarray:
    """AURC of a perfect ranking of ``n`` predictions, ``n_right`` of them correct.

    Accepting the top k gives risk r_k = max(0, k - n_right) / k; the trapezoid over the points
    k = n .. 1 plus the flat end is (sum_k r_k - r_n / 2 + r_1 / 2) / n, and sum_k r_k =
    (n - n_right) - n_right (H_n - H_n_right) with H the harmonic numbers."""
    n_right, n = np.asarray(n_right, np.float64), np.asarray(n, np.float64)
    total = (n - n_right) - n_right * (_harmonic(n) - _harmonic(n_right))
    r_n = (n - n_right) / n
    r_1 = np.where(n_right >= 1, 0.0, 1.0)
    return (total - r_n / 2 + r_1 / 2) / n


def risk_coverage_curve(scores: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coverage (descending, from 1) and selective risk at each distinct score, for plots."""
    s, ok = np.asarray(scores, np.float64).ravel(), np.asarray(correct, bool).ravel()
    grid, slots = np.unique(s, return_inverse=True)
    h_all = np.bincount(slots, minlength=grid.size)[::-1]
    h_wrong = np.bincount(slots[~ok], minlength=grid.size)[::-1]
    accepted, errors = np.cumsum(h_all)[::-1], np.cumsum(h_wrong)[::-1]
    return accepted / s.size, errors / accepted
