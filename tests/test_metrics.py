"""Metrics against independent brute-force definitions and scikit-learn, ties included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from oodbench import metrics
from oodbench.errors import UserError


def tied_scores(seed: int, n_id: int = 300, n_ood: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued scores on a small range, so ties across and within classes are common."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 12, n_id).astype(float) + 2, rng.integers(0, 12, n_ood).astype(float)


def brute_fpr(pos: np.ndarray, neg: np.ndarray, tpr: float) -> float:
    """Accept s >= t; walk thresholds from strict to loose; first with TPR >= tpr."""
    for t in np.unique(np.concatenate([pos, neg]))[::-1]:
        if np.mean(pos >= t) >= tpr:
            return float(np.mean(neg >= t))
    raise AssertionError("unreachable: the loosest threshold accepts everything")


def brute_ap(pos: np.ndarray, neg: np.ndarray) -> float:
    """Average precision = sum over thresholds of (recall step) x precision."""
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(np.concatenate([pos, neg]))[::-1]:
        tp, fp = np.sum(pos >= t), np.sum(neg >= t)
        recall = tp / len(pos)
        ap += (recall - prev_recall) * tp / (tp + fp)
        prev_recall = recall
    return float(ap)


def brute_auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + 0.5 P(pos == neg) over all pairs (Mann-Whitney U)."""
    diff = pos[:, None] - neg[None, :]
    return float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))


@pytest.mark.parametrize("seed", range(5))
def test_ranking_metrics_match_brute_force_with_ties(seed: int) -> None:
    s_id, s_ood = tied_scores(seed)
    assert metrics.auroc(s_id, s_ood) == pytest.approx(brute_auroc(s_id, s_ood))
    labels = np.r_[np.ones_like(s_id), np.zeros_like(s_ood)]
    assert metrics.auroc(s_id, s_ood) == pytest.approx(roc_auc_score(labels, np.r_[s_id, s_ood]))
    assert metrics.aupr_in(s_id, s_ood) == pytest.approx(brute_ap(s_id, s_ood))
    assert metrics.aupr_out(s_id, s_ood) == pytest.approx(brute_ap(-s_ood, -s_id))
    for tpr in (0.5, 0.9, 0.95, 1.0):
        got = metrics.fpr_at_tpr(s_id, s_ood, tpr)
        assert got == pytest.approx(brute_fpr(s_id, s_ood, tpr))
        got_ood = metrics.fpr_at_tpr(s_id, s_ood, tpr, positive="ood")
        assert got_ood == pytest.approx(brute_fpr(-s_ood, -s_id, tpr))


def test_conventions_differ_but_auroc_does_not() -> None:
    rng = np.random.default_rng(1)
    s_id, s_ood = rng.normal(1, 1, 1000), rng.normal(0, 2, 1000)
    fpr_id = metrics.fpr_at_tpr(s_id, s_ood, positive="id")
    fpr_ood = metrics.fpr_at_tpr(s_id, s_ood, positive="ood")
    assert abs(fpr_id - fpr_ood) > 0.05
    assert metrics.auroc(s_id, s_ood) == pytest.approx(1 - metrics.auroc(-s_id, -s_ood))


def test_perfect_separation_and_accepts_tensors() -> None:
    s_id, s_ood = torch.arange(10.0, 20.0), torch.arange(0.0, 10.0)
    out = metrics.ood_metrics(s_id, s_ood)
    assert out == pytest.approx({"fpr95": 0.0, "auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0})
    assert metrics.ood_metrics(s_id.numpy(), s_ood.numpy(), "ood") == out


def test_fpr_boundary_first_point_reaching_tpr() -> None:
    # 20 ID scores 1..20: TPR 0.95 needs the 19 highest, threshold 2; OOD at 2 counts as accepted.
    s_id = np.arange(1, 21, dtype=float)
    s_ood = np.array([2.0, 1.5, 0.0, 0.0])
    assert metrics.fpr_at_tpr(s_id, s_ood) == pytest.approx(0.25)


def test_empty_or_nan_scores_are_user_errors() -> None:
    with pytest.raises(UserError, match="zero|0 OOD"):
        metrics.auroc([1.0, 2.0], [])
    with pytest.raises(UserError, match="NaN"):
        metrics.auroc([1.0, float("nan")], [0.0])
    with pytest.raises(UserError, match="positive"):
        metrics.fpr_at_tpr([1.0], [0.0], positive="both")


def brute_ece(probs: np.ndarray, labels: np.ndarray, bins: int) -> float:
    conf, correct = probs.max(1), probs.argmax(1) == labels
    total = 0.0
    for i in range(bins):
        lo, hi = i / bins, (i + 1) / bins
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            total += mask.sum() / len(conf) * abs(correct[mask].mean() - conf[mask].mean())
    return total


@pytest.mark.parametrize("bins", [15, 5])
def test_ece_matches_loop_definition(bins: int) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (500, 10))
    labels = rng.integers(0, 10, 500)
    probs = metrics.softmax(logits)
    assert metrics.ece(probs, labels, bins) == pytest.approx(brute_ece(probs, labels, bins))
    assert metrics.ece(torch.from_numpy(probs), torch.from_numpy(labels), bins) == pytest.approx(
        brute_ece(probs, labels, bins)
    )


def test_id_accuracy() -> None:
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [0.0, 1.0]])
    assert metrics.id_accuracy(logits, torch.tensor([0, 1, 1, 0])) == 0.5


def test_fit_temperature_recovers_true_temperature() -> None:
    """Labels drawn from softmax(z / 2.5): the NLL-optimal temperature is close to 2.5."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 4, (20000, 5))
    p = metrics.softmax(z, 2.5)
    labels = (p.cumsum(1) > rng.random((len(z), 1))).argmax(1)
    t = metrics.fit_temperature(z, labels)
    assert t == pytest.approx(2.5, rel=0.05)
    assert metrics.nll(z, labels, t) <= metrics.nll(z, labels, 1.0)
    cal = metrics.ece(metrics.softmax(z, t), labels)
    assert cal < metrics.ece(metrics.softmax(z), labels)


@pytest.mark.parametrize("scale, bound", [(0.001, 0.01), (None, 100.0)])
def test_fit_temperature_warns_at_a_bound_of_its_range(scale: float | None, bound: float) -> None:
    """Separable tiny logits want T -> 0; labels at the lowest logit want T -> infinity.
    Either way T stops at the range's end and says so instead of clipping silently."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1, (400, 5))
    labels = z.argmax(1) if scale else z.argmin(1)
    with pytest.warns(metrics.TemperatureAtBound, match="end of the search range"):
        t = metrics.fit_temperature(z * (scale or 1.0), labels)
    assert t == pytest.approx(bound, rel=1e-3)


def test_fit_temperature_inside_the_range_does_not_warn() -> None:
    import warnings

    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, (2000, 5))
    labels = (metrics.softmax(z).cumsum(1) > rng.random((2000, 1))).argmax(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", metrics.TemperatureAtBound)
        assert 0.5 < metrics.fit_temperature(z, labels) < 2.0


@pytest.mark.parametrize("positive", ["id", "ood"])
@pytest.mark.parametrize("ties", [False, True])
def test_fast_metrics_equal_scikit_learn_metrics(positive: str, ties: bool) -> None:
    """The selection step's cumulative-sum metrics agree with the metrics rows' scikit-learn
    ones, ties included (rounded scores put many items on one value)."""
    rng = np.random.default_rng(7)
    s_id, s_ood = rng.normal(1.0, 1.0, 3000), rng.normal(0.0, 1.3, 1700)
    if ties:
        s_id, s_ood = np.round(s_id, 1), np.round(s_ood, 1)
    fast = metrics.fast_metrics(s_id, s_ood, positive)
    slow = metrics.ood_metrics(s_id, s_ood, positive)
    assert fast.keys() == slow.keys()
    for key, value in slow.items():
        assert fast[key] == pytest.approx(value, abs=1e-12), key
