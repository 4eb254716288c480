"""Significance of paired differences over seeds, corrected within a declared family.

A comparison is one loss against CE for one detector, one metric, one track and one setting,
paired by seed. Its raw p-value is the two-sided one-sample t-test of the per-seed differences
against zero (``scipy.stats.ttest_1samp``, the test behind ``metrics.paired_interval``: the
interval excludes zero exactly when p < 0.05). The p-values of one *family* (every detector
of one loss against CE on one track, for one metric, in one setting) are adjusted together by
Holm (family-wise error) and Benjamini-Hochberg (false discovery rate) with
``statsmodels.stats.multitest.multipletests``. A difference is *significant* when its
Holm-adjusted p is below ``ALPHA``.

``coinciding`` finds detectors that are the same test on a run (the same metric rows on every
run and OOD set, or the same cached scores up to rank), so counts such as "k of n significant"
count them once.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd

from oodbench.metrics import ArrayLike, to_numpy

ALPHA = 0.05  # a Holm-adjusted p below this is significant
STAR_TEXT = "* = significant: Holm-adjusted p < 0.05 within its family"


def paired_p(diffs: ArrayLike) -> float:
    """Two-sided p of the one-sample t-test of per-seed differences against zero (NaN with
    fewer than two finite values). Differences that are all equal have no spread: p is 0 when
    they are not zero (the t-interval is a point that excludes zero), 1 when they are."""
    from scipy.stats import ttest_1samp

    d = to_numpy(diffs).ravel()
    d = d[np.isfinite(d)]
    if d.size < 2:
        return math.nan
    if np.all(d == d[0]):
        return 0.0 if d[0] != 0 else 1.0
    return float(ttest_1samp(d, 0.0).pvalue)


def adjust(pvalues: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Holm-adjusted p-values and Benjamini-Hochberg q-values of one family (NaN entries, the
    comparisons without a p-value, stay NaN and are not counted in the family)."""
    import gc

    import statsmodels.stats.multitest as mt

    p = np.asarray(pvalues, dtype=np.float64)
    holm, bh = np.full(p.shape, np.nan), np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        # multipletests' Holm branch ends with gc.collect() (to free one temporary array):
        # about a second per family on a heap that holds torch and pandas, so it is skipped
        collect, gc.collect = gc.collect, lambda *_: 0  # type: ignore[method-assign]
        try:
            holm[ok] = mt.multipletests(p[ok], alpha=ALPHA, method="holm")[1]
        finally:
            gc.collect = collect  # type: ignore[method-assign]
        bh[ok] = mt.multipletests(p[ok], alpha=ALPHA, method="fdr_bh")[1]
    return holm, bh


def adjust_families(frame: pd.DataFrame, family: list[str], p_col: str) -> pd.DataFrame:
    """``frame`` plus ``<p_col>_holm`` and the BH q-value column (``p_col`` with ``_p``
    replaced by ``_q_bh``), each adjusted within the groups of ``family`` columns."""
    holm_col, bh_col = f"{p_col}_holm", p_col.removesuffix("_p") + "_q_bh"
    out = frame.copy()
    out[holm_col], out[bh_col] = np.nan, np.nan
    by = family[0] if len(family) == 1 else family  # pandas 3 warns on a list of one
    for _, idx in out.groupby(by, sort=False, dropna=False).groups.items():
        holm, bh = adjust(out.loc[idx, p_col].to_numpy(dtype=np.float64))
        out.loc[idx, holm_col], out.loc[idx, bh_col] = holm, bh
    return out


def significant(p_holm: float) -> bool:
    return bool(np.isfinite(p_holm) and p_holm < ALPHA)


# ------------------------------------------------------------------ coinciding detectors


def coinciding(rows: pd.DataFrame, keys: list[str], values: list[str]) -> dict[str, int]:
    """Detectors whose ``values`` are identical on every ``keys`` row (e.g. run and OOD set):
    detector -> a cluster number shared by the detectors it coincides with; a detector that
    coincides with none is absent. Rows are the metric rows of one loss."""
    wide = rows.pivot_table(index=keys, columns="detector", values=values, aggfunc="first")
    clusters: dict[Hashable, list[str]] = {}
    for det in dict.fromkeys(rows["detector"]):
        cols = wide.xs(det, axis=1, level="detector")
        if not cols.isna().any().any():
            clusters.setdefault(tuple(cols.to_numpy().ravel().tolist()), []).append(str(det))
    found = [dets for dets in clusters.values() if len(dets) > 1]
    return {det: i for i, dets in enumerate(found) for det in dets}


def first_of_cluster(detectors: Iterable[str], cluster: dict[str, int]) -> dict[str, str]:
    """Among ``detectors`` (in order): each one that coincides with an earlier one -> that
    earlier one."""
    first: dict[int, str] = {}
    out = {}
    for det in detectors:
        if det in cluster:
            out[det] = first.setdefault(cluster[det], det)
    return {d: f for d, f in out.items() if d != f}


def same_ranking(a: ArrayLike, b: ArrayLike) -> bool:
    """Two detectors' scores on the same images rank them identically (ties included)."""
    from scipy.stats import rankdata

    x, y = to_numpy(a).ravel(), to_numpy(b).ravel()
    return x.size == y.size and bool(np.array_equal(rankdata(x), rankdata(y)))


# ------------------------------------------------------- two-level paired bootstrap

SeedScores = tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]
METRIC_ROWS = {"fpr95": 0, "auroc": 1, "aupr_in": 2, "aupr_out": 3}  # _curve_metrics' rows


def _image_draws(seed: SeedScores, n: int, rng: np.random.Generator, positive: str
                 ) -> np.ndarray:  # fmt: skip
    """``n`` resamples of one seed's test images (the ID images once, each OOD set on its
    own; the same images for both models): model A's metrics minus model B's, averaged over
    the OOD sets, in percent (4 x n, rows as METRIC_ROWS)."""
    from oodbench.metrics import _CHUNK, _curve_metrics, _on_grid

    id_a, id_b, oods = seed
    out = np.zeros((4, n))
    step = max(1, _CHUNK // (id_a.size + max(o[0].size for o in oods)))
    for start in range(0, n, step):
        m = min(step, n - start)
        id_picks = rng.integers(0, id_a.size, size=(m, id_a.size))
        for ood_a, ood_b in oods:
            ood_picks = rng.integers(0, ood_a.size, size=(m, ood_a.size))
            for sign, s_id, s_ood in ((1.0, id_a, ood_a), (-1.0, id_b, ood_b)):
                id_slots, ood_slots, u = _on_grid(s_id, s_ood)
                h_id = _counts(id_slots[id_picks], u)
                h_ood = _counts(ood_slots[ood_picks], u)
                out[:, start : start + m] += sign * _curve_metrics(h_id, h_ood, positive, 0.95)
    return 100.0 * out / len(oods)


def _counts(picks: np.ndarray, u: int) -> np.ndarray:
    """Per-slot counts of each resample (rows of ``picks``), as float32 (exact integers)."""
    rows = picks.shape[0]
    flat = (picks + (np.arange(rows) * u)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * u).reshape(rows, u).astype(np.float32)


def two_level_interval(
    seeds: Sequence[SeedScores],
    positive: str = "id",
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """95% percentile interval of a paired difference (model A - model B, in points, each
    metric averaged over the OOD sets, then over seeds) from a two-level bootstrap: resample
    the seeds with replacement, then, within each drawn seed, the test images (ID and each
    OOD set), the same images for both models. ``seeds``: per seed, (ID scores of A, of B,
    [(OOD scores of A, of B) per OOD set]), scores of one image at one index in A and B.

    It covers seed-to-seed variation and the sampling of the test images; it does not cover
    the choice of the OOD sets, of the data the models trained on, or of the recipe."""
    if len(seeds) < 1:
        raise ValueError("two_level_interval needs at least one seed")
    rng = np.random.default_rng(seed)
    k = len(seeds)
    # one independent image resample per (outer draw, position): draw k * n_boot per seed
    inner = [_image_draws(s, n_boot * k, rng, positive) for s in seeds]
    picked = rng.integers(0, k, size=(n_boot, k))
    draws = np.zeros((4, n_boot))
    for j in range(k):
        for s in range(k):
            rows = picked[:, j] == s
            draws[:, rows] += inner[s][:, np.flatnonzero(rows) * k + j]
    draws /= k
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(draws, [tail, 100 - tail], axis=1)
    return {name: (float(lo[i]), float(hi[i])) for name, i in METRIC_ROWS.items()}
