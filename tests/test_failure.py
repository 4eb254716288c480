"""Failure detection (correct vs wrong ID predictions): AURC, E-AURC, AUGRC, AUROC, FPR95."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oodbench import metrics
from oodbench.detectors.selective import optimal_aurc, risk_coverage_curve
from oodbench.errors import UserError


def reference(scores: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    """AURC and AUGRC written the slow way, one sample at a time (the loop of Traub et al.'s
    fd-shifts ``selective_risk_stats``): a point per distinct score, trapezoid rule."""
    order = np.argsort(scores, kind="stable")  # ascending: reject from the front
    s, wrong = scores[order], 1 - correct[order].astype(float)
    n = len(s)
    cov, err = [1.0], [wrong.sum()]
    for i in range(n - 1):
        if s[i] != s[i + 1]:
            cov.append((n - i - 1) / n)
            err.append(wrong[i + 1 :].sum())
    sel = [e / (c * n) for c, e in zip(cov, err, strict=True)]
    gen = [e / n for e in err]
    aurc = sum((cov[i] - cov[i + 1]) * (sel[i] + sel[i + 1]) / 2 for i in range(len(cov) - 1))
    aurc += cov[-1] * sel[-1]  # flat to coverage 0
    augrc = sum((cov[i] - cov[i + 1]) * (gen[i] + gen[i + 1]) / 2 for i in range(len(cov) - 1))
    augrc += cov[-1] * gen[-1] / 2  # down to (0, 0)
    return aurc, augrc


def test_hand_computed_small_case() -> None:
    # ranked c, c, w, c: RC points (1, 1/4), (3/4, 1/3), (1/2, 0), (1/4, 0), flat to 0
    got = metrics.failure_metrics([4.0, 3.0, 2.0, 1.0], [1, 1, 0, 1])
    aurc = 0.25 * (1 / 4 + 1 / 3) / 2 + 0.25 * (1 / 3) / 2
    augrc = 0.25 * 0.25 + 0.25 * 0.25 / 2  # generalized risk: 1/4, 1/4, 0, 0, 0
    best = 0.25 * 0.25 / 2  # c, c, c, w
    assert got["aurc"] == pytest.approx(aurc)
    assert got["augrc"] == pytest.approx(augrc)
    assert got["eaurc"] == pytest.approx(aurc - best)
    assert got["auroc"] == pytest.approx(2 / 3)  # the wrong one beats one of three correct
    assert got["fpr95"] == 1.0  # keeping 95% of correct keeps all four
    assert set(got) == {"aurc", "eaurc", "augrc", "auroc", "fpr95"}


def test_ties_form_one_point() -> None:
    """All scores tied: one RC point at coverage 1, so AURC is the error rate (flat) and AUGRC
    half its square (the line to (0, 0)); the order of the samples does not matter."""
    got = metrics.failure_metrics([1.0] * 4, [1, 1, 0, 1])
    assert got["aurc"] == pytest.approx(0.25)
    assert got["augrc"] == pytest.approx(0.125)
    assert got["eaurc"] == pytest.approx(0.25 - 0.25 * 0.25 / 2)
    assert got["auroc"] == pytest.approx(0.5)
    # a correct and a wrong sample tied in the middle: scores 3, 2, 2, 1 ranked c, (w, c), c
    # give the points (1, 1/4), (3/4, 1/3), (1/4, 0) and the flat end
    got = metrics.failure_metrics([3.0, 2.0, 2.0, 1.0], [1, 0, 1, 1])
    aurc = 0.25 * (1 / 4 + 1 / 3) / 2 + 0.5 * (1 / 3 + 0) / 2
    augrc = 0.25 * 0.25 + 0.5 * 0.25 / 2
    assert got["aurc"] == pytest.approx(aurc)
    assert got["augrc"] == pytest.approx(augrc)
    swapped = metrics.failure_metrics([3.0, 2.0, 2.0, 1.0], [1, 1, 0, 1])
    assert swapped["aurc"] == pytest.approx(aurc)  # within a tie the order is irrelevant


def test_perfect_and_worst_ranking() -> None:
    right = metrics.failure_metrics(np.arange(10.0), [0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    assert right["eaurc"] == pytest.approx(0.0, abs=1e-12)
    assert right["auroc"] == 1.0 and right["fpr95"] == 0.0
    assert right["augrc"] == pytest.approx(0.5 * 0.2**2)  # Traub et al.'s optimum, r^2 / 2
    worst = metrics.failure_metrics(-np.arange(10.0), [0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    assert worst["eaurc"] > 0.3 and worst["auroc"] == 0.0
    everything_right = metrics.failure_metrics([0.3, 0.2], [1, 1])
    assert everything_right["aurc"] == 0.0 and everything_right["eaurc"] == 0.0
    assert math.isnan(everything_right["auroc"]) and math.isnan(everything_right["fpr95"])


@pytest.mark.parametrize("levels", [7, 10_000])  # heavy ties, then almost none
def test_equals_an_independent_computation_on_random_data(levels: int) -> None:
    rng = np.random.default_rng(levels)
    scores = rng.integers(0, levels, 400).astype(float)
    correct = rng.random(400) < 0.3 + 0.6 * scores / levels
    aurc, augrc = reference(scores, correct)
    got = metrics.failure_metrics(scores, correct)
    assert got["aurc"] == pytest.approx(aurc, abs=1e-12)
    assert got["augrc"] == pytest.approx(augrc, abs=1e-12)
    # the optimum: the same estimator on a perfect ranking with distinct scores
    perfect = np.where(correct, 1000.0, 0.0) + rng.permutation(400)
    assert got["aurc"] - got["eaurc"] == pytest.approx(reference(perfect, correct)[0], abs=1e-12)
    from sklearn.metrics import roc_auc_score

    assert got["auroc"] == pytest.approx(roc_auc_score(correct, scores))
    kept = np.sort(scores[correct])[::-1][math.ceil(0.95 * correct.sum()) - 1]
    assert got["fpr95"] == pytest.approx(np.mean(scores[~correct] >= kept))


def test_optimal_aurc_closed_form_matches_the_limit() -> None:
    n, err = 100_000, 0.2
    limit = err + (1 - err) * math.log(1 - err)  # Geifman et al. 2019
    assert optimal_aurc(np.array([n * (1 - err)]), np.array([n]))[0] == pytest.approx(
        limit, abs=1e-4
    )


def test_intervals_cover_the_point_and_are_reproducible() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=2000)
    ok = rng.random(2000) < 1 / (1 + np.exp(-2 * s - 1))
    point = metrics.failure_metrics(s, ok)
    a = metrics.failure_intervals(s, ok, n_boot=300, seed=5)
    assert a == metrics.failure_intervals(s, ok, n_boot=300, seed=5)
    for k, (lo, hi) in a.items():
        assert lo < point[k] < hi, k
        assert hi - lo < 0.2, k


def test_resampled_counts_give_the_point_definitions() -> None:
    """One resample as counts on the score grid equals failure_metrics on the resampled arrays,
    so the interval is of the very numbers we report."""
    rng = np.random.default_rng(1)
    s, ok = rng.integers(0, 20, 300).astype(float), rng.random(300) < 0.7
    grid, slots = np.unique(s, return_inverse=True)
    for _ in range(4):
        pick = rng.integers(0, 300, 300)
        h_right = np.bincount(slots[pick][ok[pick]], minlength=grid.size)[None].astype(float)
        h_wrong = np.bincount(slots[pick][~ok[pick]], minlength=grid.size)[None].astype(float)
        got = metrics._failure_values(h_right, h_wrong)[:, 0]
        want = metrics.failure_metrics(s[pick], ok[pick])
        assert got == pytest.approx([want[k] for k in metrics.FAILURE], abs=1e-12)


def test_risk_coverage_curve_and_bad_input() -> None:
    cov, risk = risk_coverage_curve(np.array([4.0, 3.0, 2.0, 1.0]), np.array([1, 1, 0, 1]))
    assert cov.tolist() == [1.0, 0.75, 0.5, 0.25]
    assert risk == pytest.approx([0.25, 1 / 3, 0.0, 0.0])
    with pytest.raises(UserError, match="one correct/wrong flag per score"):
        metrics.failure_metrics([1.0, 2.0], [1])
    with pytest.raises(UserError, match="NaN"):
        metrics.failure_metrics([1.0, math.nan], [1, 0])
