"""OOD and calibration metrics on scikit-learn. Every function returns a fraction in [0, 1].

Scores follow the detector convention: higher means more in-distribution. ``positive`` picks
which class counts as positive for FPR at a fixed TPR:

* ``"id"`` (default, the LogitNorm paper / Outlier Exposure code): FPR95 is the fraction of OOD
  samples accepted at the threshold that keeps 95% of ID samples.
* ``"ood"`` (OpenOOD v1.5, pytorch-ood): FPR95 is the fraction of ID samples rejected at the
  threshold that detects 95% of OOD samples.

AUROC does not depend on the convention; AUPR-In (ID positive) and AUPR-Out (OOD positive) are
both always reported.

``bootstrap_intervals`` gives each of the four a 95% percentile interval from stratified
resamples of the ID and OOD scores; ``paired_interval`` a t-interval over seeds (of a paired
difference, or of a mean).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from oodbench.config import POSITIVES, check_choice
from oodbench.errors import UserError

ArrayLike = Any  # numpy array, torch tensor or sequence
T_RANGE = (0.01, 100.0)  # fit_temperature's search range


class TemperatureAtBound(UserWarning):
    """fit_temperature stopped at an end of its search range: the fitted T is not a minimum."""


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
    from sklearn.metrics import roc_auc_score  # scikit-learn only where a metric needs it

    labels, scores = _labelled(id_scores, ood_scores)
    return float(roc_auc_score(labels, scores))


def aupr_in(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Average precision with ID as the positive class (the paper's "AUPR")."""
    from sklearn.metrics import average_precision_score

    labels, scores = _labelled(id_scores, ood_scores)
    return float(average_precision_score(labels, scores))


def aupr_out(id_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Average precision with OOD as the positive class (scores negated)."""
    from sklearn.metrics import average_precision_score

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
    from sklearn.metrics import roc_curve

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


def brier(probs: ArrayLike, labels: ArrayLike) -> float:
    """Multi-class Brier score, mean of sum_k (p_k - 1[y = k])^2 in [0, 2] (scikit-learn's)."""
    from sklearn.metrics import brier_score_loss

    p, y = to_numpy(probs), to_numpy(labels, np.int64)
    return float(brier_score_loss(y, p, labels=np.arange(p.shape[1]), scale_by_half=False))


def fit_temperature(logits: ArrayLike, labels: ArrayLike) -> float:
    """Temperature minimising the NLL on held-out ID validation logits (Guo et al., 2017).

    Fit it on the run's validation split, never on the test split. The search is over
    log T in [log 0.01, log 100] (``T_RANGE``), so T stays positive and the 1-D problem is
    solved exactly. An optimum at an end of the range is not clipped silently: it warns with
    ``TemperatureAtBound`` (``score`` records the message in summary.json).
    """
    z, y = to_numpy(logits), to_numpy(labels, np.int64)
    if z.ndim != 2 or z.shape[0] == 0:
        raise UserError("fit_temperature needs a non-empty N x K logit matrix (validation split)")
    from scipy.optimize import minimize_scalar

    lo, hi = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    res = minimize_scalar(
        lambda log_t: nll(z, y, math.exp(log_t)),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-6},
    )
    t = float(math.exp(res.x))
    if min(res.x - lo, hi - res.x) < 1e-3:  # the optimum lies at or beyond the range's end
        warnings.warn(
            f"temperature T = {t:.4g} is at the end of the search range [{T_RANGE[0]:g}, "
            f"{T_RANGE[1]:g}]: the NLL-optimal T lies at or outside it, so T and ECE after "
            "scaling are not at their optimum (the validation split may be tiny or the "
            "model degenerate)",
            TemperatureAtBound,
            stacklevel=2,
        )
    return t


# ---------------------------------------------------------------- bootstrap intervals

N_BOOT = 1000  # resamples per metrics row
LEVEL = 0.95  # two-sided percentile interval
_CHUNK = 250_000  # resamples x distinct scores per batch: the arrays stay in L2 (1 MB each)


def row_seed(*key: object) -> int:
    """A stable 63-bit seed from a metrics row's KEY (same key, same resamples, any machine)."""
    import hashlib

    text = "|".join(str(k) for k in key).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def _on_grid(s_id: np.ndarray, s_ood: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Map both score sets onto the sorted distinct values of their union (ties share a slot)."""
    grid, inverse = np.unique(np.concatenate([s_id, s_ood]), return_inverse=True)
    return inverse[: s_id.size], inverse[s_id.size :], grid.size


def _resampled_counts(slots: np.ndarray, size: int, n: int, u: int, rng: np.random.Generator
                      ) -> np.ndarray:  # fmt: skip
    """``n`` resamples with replacement of ``size`` items each, as per-slot counts (n x u)."""
    picks = slots[rng.integers(0, slots.size, size=(n, size))]
    picks += (np.arange(n) * u)[:, None]  # resample b counts into slots b*u .. b*u + u - 1
    flat = picks.ravel()
    # float32 halves the memory traffic; counts and partial sums stay exact integers far past
    # any test set's size, and the bounds agree with float64 to about 1e-7.
    return np.bincount(flat, minlength=n * u).reshape(n, u).astype(np.float32)


def _inclusive_exclusive(h: np.ndarray) -> np.ndarray:
    """Cumulative counts with a leading zero column: ``[:, 1:]`` counts items with score <=
    slot, ``[:, :-1]`` those with score < slot (both views of one array, one pass)."""
    c = np.empty((h.shape[0], h.shape[1] + 1), h.dtype)
    c[:, 0] = 0
    # torch's cumulative sum: about 3.4x numpy's on one thread (benchmarks/bootstrap_cost.py)
    torch.cumsum(torch.from_numpy(h), 1, out=torch.from_numpy(c)[:, 1:])
    return c


def _curve_metrics(h_id: np.ndarray, h_ood: np.ndarray, positive: str, tpr: float) -> np.ndarray:
    """fpr95, auroc, aupr_in, aupr_out (4 x n) from per-slot counts (n x u, slots ascending),
    by the same definitions as the scikit-learn functions above (ties: one point per value).

    Memory-bound on the n x u arrays, so the passes over them are kept few: one cumulative sum
    per class gives both the "<= slot" and "< slot" counts, the FPR threshold is a binary search
    per resample (the counts are monotone), and the rest is in place or in einsum."""
    c_id, c_ood = _inclusive_exclusive(h_id), _inclusive_exclusive(h_ood)
    n_id, n_ood = c_id[:, -1], c_ood[:, -1]
    below_ood = c_ood[:, 1:]  # OOD with score <= slot
    pairs = np.einsum("bu,bu->b", h_id, below_ood) - 0.5 * np.einsum("bu,bu->b", h_id, h_ood)
    auroc = pairs / (n_id * n_ood)
    fpr = np.empty(h_id.shape[0])
    for b in range(h_id.shape[0]):
        if positive == "id":  # the strictest threshold (highest slot) keeping >= tpr of ID:
            # ID with score >= slot j is n_id - c_id[j], non-increasing in j
            last = np.searchsorted(c_id[b, :-1], n_id[b] - (tpr * n_id[b] - 1e-9), "right") - 1
            fpr[b] = (n_ood[b] - c_ood[b, last]) / n_ood[b]
        else:  # OOD positive on negated scores: the lowest slot keeping >= tpr of OOD
            first = np.searchsorted(below_ood[b], tpr * n_ood[b] - 1e-9, "left")
            fpr[b] = c_id[b, first + 1] / n_id[b]
    c_all = np.add(c_id, c_ood)
    # AUPR-In: precision at each ID slot, (ID >= slot) / (all >= slot), weighted by its ID
    # count; max(., 1) only guards slots with no items, whose weight is 0
    prec = np.maximum(np.subtract(c_all[:, -1:], c_all[:, :-1]), 1.0)
    np.divide(np.subtract(n_id[:, None], c_id[:, :-1]), prec, out=prec)
    aupr_in = np.einsum("bu,bu->b", h_id, prec) / n_id
    # AUPR-Out on negated scores: precision (OOD <= slot) / (all <= slot) at each OOD slot
    prec = np.maximum(c_all[:, 1:], 1.0)
    np.divide(below_ood, prec, out=prec)
    aupr_out = np.einsum("bu,bu->b", h_ood, prec) / n_ood
    return np.stack([fpr, auroc, aupr_in, aupr_out])


def bootstrap_intervals(
    id_scores: ArrayLike,
    ood_scores: ArrayLike,
    positive: str = "id",
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    ood_size: int | None = None,
    level: float = LEVEL,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals (fractions) of fpr95, auroc, aupr_in and aupr_out.

    ID and OOD scores are resampled independently with replacement (stratified: every resample
    keeps the class sizes), ``ood_size`` OOD items per resample (default: all of them; the paper
    protocol passes its subsample size). Vectorised: all resamples are per-slot counts on the
    sorted distinct scores, so one resample costs a few cumulative sums instead of a sort.
    """
    check_choice("positive", positive, POSITIVES)
    labels, _ = _labelled(id_scores, ood_scores)  # the same checks as the point metrics
    s_id, s_ood = to_numpy(id_scores).ravel(), to_numpy(ood_scores).ravel()
    id_slots, ood_slots, u = _on_grid(s_id, s_ood)
    m = s_ood.size if ood_size is None else int(ood_size)
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK // max(u, s_id.size + m))
    parts = []
    for start in range(0, n_boot, step):
        n = min(step, n_boot - start)
        h_id = _resampled_counts(id_slots, s_id.size, n, u, rng)
        h_ood = _resampled_counts(ood_slots, m, n, u, rng)
        parts.append(_curve_metrics(h_id, h_ood, positive, 0.95))
    draws = np.concatenate(parts, axis=1).astype(np.float64)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(draws, [tail, 100 - tail], axis=1)
    names = ("fpr95", "auroc", "aupr_in", "aupr_out")
    return {k: (float(lo[i]), float(hi[i])) for i, k in enumerate(names)}


def fast_metrics(id_scores: ArrayLike, ood_scores: ArrayLike, positive: str = "id"
                 ) -> dict[str, float]:  # fmt: skip
    """``ood_metrics`` by the bootstrap's cumulative sums on the actual counts: the same
    definitions (tests/test_metrics.py checks agreement to 1e-12), without scikit-learn's
    per-call validation, which dominated ``--tune`` (about 2,000 calls a run) and the paper
    protocol's 10 draws a row. The selection step and those draws use it; the full protocol's
    single evaluation keeps scikit-learn."""
    check_choice("positive", positive, POSITIVES)
    _labelled(id_scores, ood_scores)
    s_id, s_ood = to_numpy(id_scores).ravel(), to_numpy(ood_scores).ravel()
    id_slots, ood_slots, u = _on_grid(s_id, s_ood)
    h_id = np.bincount(id_slots, minlength=u).astype(np.float64)[None]
    h_ood = np.bincount(ood_slots, minlength=u).astype(np.float64)[None]
    values = _curve_metrics(h_id, h_ood, positive, 0.95)[:, 0]
    return dict(zip(("fpr95", "auroc", "aupr_in", "aupr_out"), map(float, values), strict=True))


def paired_interval(diffs: ArrayLike, level: float = LEVEL) -> tuple[float, float] | None:
    """Student-t interval of a mean over seeds, e.g. of per-seed paired differences (None with
    fewer than two values).

    A t-interval, not a bootstrap over seeds: with the 2-5 seeds a study affords, a bootstrap
    has only a handful of distinct resamples and its percentile interval is far too narrow,
    while the t-interval is exact when the seed-to-seed differences are normal."""
    from scipy.stats import t as student_t

    d = to_numpy(diffs).ravel()
    d = d[np.isfinite(d)]
    if d.size < 2:
        return None
    half = float(student_t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return float(d.mean() - half), float(d.mean() + half)


# ---------------------------------------------------------------- failure detection

FAILURE = ("aurc", "eaurc", "augrc", "auroc", "fpr95")  # failure_metrics' keys, in order


def _failure_inputs(scores: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s, ok = to_numpy(scores).ravel(), to_numpy(correct, bool).ravel()
    if s.size == 0 or s.size != ok.size:
        raise UserError(f"failure metrics need one correct/wrong flag per score, got {s.size} "
                        f"scores and {ok.size} flags")  # fmt: skip
    if not np.all(np.isfinite(s)):
        raise UserError("detector produced NaN or infinite scores; check the model and inputs")
    return s, ok


def _failure_values(h_right: np.ndarray, h_wrong: np.ndarray) -> np.ndarray:
    """aurc, eaurc, augrc, auroc, fpr95 (5 x b) from per-slot counts (b x u, ascending);
    AUROC and FPR95 are NaN in a resample without correct or without wrong samples."""
    from oodbench.detectors.selective import rc_areas

    aurc, augrc, best = rc_areas(h_right, h_wrong)
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr, auc = _curve_metrics(h_right, h_wrong, "id", 0.95)[:2]
    one_class = (h_right.sum(axis=1) == 0) | (h_wrong.sum(axis=1) == 0)
    fpr[one_class], auc[one_class] = math.nan, math.nan
    return np.stack([aurc, aurc - best, augrc, auc, fpr])


def failure_metrics(scores: ArrayLike, correct: ArrayLike) -> dict[str, float]:
    """Failure detection on the ID test set: does the score rank the model's own mistakes last?

    ``scores``: higher = more confident; ``correct``: whether each prediction is right. Returns
    fractions: ``aurc`` (Geifman & El-Yaniv 2017), ``eaurc`` (AURC minus the AURC of a perfect
    ranking of the same predictions), ``augrc`` (Traub et al., NeurIPS 2024), and ``auroc`` and
    ``fpr95`` of correct (positive) vs wrong: FPR95 is the fraction of wrong predictions kept
    at the threshold that keeps 95% of the correct ones. Ties: docs/metrics.md. AUROC and
    FPR95 are NaN when every prediction is right or every one wrong."""
    s, ok = _failure_inputs(scores, correct)
    out = dict.fromkeys(FAILURE, math.nan)
    grid, slots = np.unique(s, return_inverse=True)
    h_right = np.bincount(slots[ok], minlength=grid.size).astype(np.float64)[None]
    h_wrong = np.bincount(slots[~ok], minlength=grid.size).astype(np.float64)[None]
    out.update(zip(FAILURE, map(float, _failure_values(h_right, h_wrong)[:, 0]), strict=True))
    if ok.all() or not ok.any():
        return out
    from sklearn.metrics import roc_auc_score

    out["auroc"] = float(roc_auc_score(ok, s))
    out["fpr95"] = fpr_at_tpr(s[ok], s[~ok], 0.95, "id")
    return out


def failure_intervals(
    scores: ArrayLike, correct: ArrayLike, *, n_boot: int = N_BOOT, seed: int = 0,
    level: float = LEVEL,
) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Percentile bootstrap intervals (fractions) of ``failure_metrics``' values: (score,
    correct) pairs resampled together, not stratified (AURC depends on the error rate)."""
    s, ok = _failure_inputs(scores, correct)
    grid, slots = np.unique(s, return_inverse=True)
    u = grid.size
    pairs = slots * 2 + ok  # slot 2j: wrong at score j, slot 2j + 1: correct
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK // max(2 * u, s.size))
    parts = []
    for start in range(0, n_boot, step):
        n = min(step, n_boot - start)
        h = _resampled_counts(pairs, s.size, n, 2 * u, rng).astype(np.float64)
        parts.append(_failure_values(h[:, 1::2], h[:, 0::2]))
    draws = np.concatenate(parts, axis=1)
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN metric gives NaN bounds
        lo, hi = np.nanpercentile(draws, [tail, 100 - tail], axis=1)
    return {k: (float(lo[i]), float(hi[i])) for i, k in enumerate(FAILURE)}
