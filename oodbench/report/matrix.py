"""The loss x detector matrix (issue 13): which training loss, with which detector?

One row per (loss column, detector) of the report: FPR95 and AUROC averaged over the OOD sets
every run shares, then mean and 95% t-interval over seeds; the change against CE paired by seed,
with a paired t-interval (``metrics.paired_interval``) and "significant" only when that interval
excludes zero (two seeds at least). Rendered as tables here and as a heatmap in plots.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import oodbench.report.tables as T
from oodbench.metrics import paired_interval
from oodbench.report.spec import SUMMARY_KEYS, Cell, TableSpec, num

METRICS = ("fpr95", "auroc")
SIG = "*"  # marks a change whose paired interval over seeds excludes zero


@dataclass
class Matrix:
    frame: pd.DataFrame  # one row per (group, detector); see loss_matrix
    groups: list[T.Group]
    baseline: str | None  # the CE column's label, None when the runs have no single CE column

    @property
    def labels(self) -> list[str]:
        return [g.label for g in self.groups]

    @property
    def detectors(self) -> list[str]:
        return list(dict.fromkeys(self.frame["detector"]))

    def value(self, group: str, detector: str, column: str) -> float:
        hit = self.frame[(self.frame["group"] == group) & (self.frame["detector"] == detector)]
        return float(hit[column].iloc[0]) if len(hit) else float("nan")


def wanted(groups: list[T.Group]) -> bool:
    """The matrix appears when the runs compare losses beyond the CE / LogitNorm pair."""
    losses = {g.loss for g in groups}
    return len(groups) >= 2 and (len(losses) >= 3 or bool(losses - {"ce", "logitnorm"}))


def _per_run_averages(tidy: pd.DataFrame) -> pd.DataFrame:
    with_avg, _ = T.with_averages(tidy)
    return with_avg[with_avg["ood_dataset"] == T.AVERAGE]


def _mean_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and the 95% t-interval of the mean over seeds (NaN bounds with one seed)."""
    interval = paired_interval(values)
    lo, hi = interval if interval else (np.nan, np.nan)
    return float(np.mean(values)), lo, hi


def loss_matrix(tidy: pd.DataFrame, groups: list[T.Group]) -> Matrix:
    """Columns: group, loss, detector, n_seeds, and per metric m: m (mean over seeds), m_lo,
    m_hi (interval of the mean), m_delta (vs CE, paired by seed), m_delta_lo, m_delta_hi,
    m_significant."""
    avg = _per_run_averages(tidy)
    seed_of = {str(r.path): r.seed for g in groups for r in g.runs}
    group_of = {str(r.path): g.label for g in groups for r in g.runs}
    avg = avg.assign(group=avg["run"].map(group_of), seed=avg["run"].map(seed_of))
    ce = [g.label for g in groups if g.loss == "ce"]
    baseline = ce[0] if len(ce) == 1 else None
    records = []
    for g in groups:
        for det in dict.fromkeys(avg["detector"]):
            sub = avg[(avg["group"] == g.label) & (avg["detector"] == det)]
            if sub.empty:
                continue
            rec: dict[str, object] = {"group": g.label, "loss": g.loss, "detector": det,
                                      "n_seeds": len(sub)}  # fmt: skip
            base = avg[(avg["group"] == baseline) & (avg["detector"] == det)] if baseline else None
            for m in METRICS:
                rec[m], rec[f"{m}_lo"], rec[f"{m}_hi"] = _mean_interval(sub[m].tolist())
                rec |= _change(sub, base, m) if g.label != baseline else _no_change(m)
            records.append(rec)
    return Matrix(pd.DataFrame(records), groups, baseline)


def _no_change(m: str) -> dict[str, object]:
    return {f"{m}_delta": np.nan, f"{m}_delta_lo": np.nan, f"{m}_delta_hi": np.nan,
            f"{m}_significant": False}  # fmt: skip


def _change(sub: pd.DataFrame, base: pd.DataFrame | None, m: str) -> dict[str, object]:
    if base is None or base.empty:
        return _no_change(m)
    ours, theirs = sub.set_index("seed")[m], base.set_index("seed")[m]
    common = [s for s in ours.index if s in theirs.index]
    if not common:  # no shared seed: the difference of the means, without an interval
        return _no_change(m) | {f"{m}_delta": float(ours.mean() - theirs.mean())}
    diffs = [float(ours[s] - theirs[s]) for s in common]
    interval = paired_interval(diffs)
    lo, hi = interval if interval else (np.nan, np.nan)
    return {f"{m}_delta": float(np.mean(diffs)), f"{m}_delta_lo": lo, f"{m}_delta_hi": hi,
            f"{m}_significant": bool(interval and (lo > 0 or hi < 0))}  # fmt: skip


# ------------------------------------------------------------------------------ the tables


def _pm(mean: float, lo: float, hi: float) -> str:
    return num(mean, (hi - lo) / 2 if np.isfinite(lo) else None)


def _value_table(mx: Matrix, m: str) -> TableSpec:
    arrow = "↓" if T.LOWER_IS_BETTER[m] else "↑"
    rows = []
    for det in mx.detectors:
        values = {g: mx.value(g, det, m) for g in mx.labels}
        best = T.best_groups(values, m)
        row = [Cell(det)]
        for g in mx.labels:
            lo, hi = mx.value(g, det, f"{m}_lo"), mx.value(g, det, f"{m}_hi")
            row.append(Cell(_pm(values[g], lo, hi), g in best))
        rows.append(row)
    name = T.METRIC_NAMES[m]
    notes = ["Mean over the OOD sets every run shares, then mean over seeds; ± is half the 95% "
             "t-interval of that mean over seeds (none with one seed). Bold: the best loss for "
             "the detector."]  # fmt: skip
    return TableSpec(f"{name} {arrow}: loss × detector", ["Detector", *mx.labels], rows, notes)


def _delta_text(delta: float, significant: bool, m: str) -> Cell:
    if not np.isfinite(delta):
        return Cell("—")
    better = T.is_better(m, delta)
    mark = {True: " ✓", False: " ✗", None: ""}[better]
    tone = {True: "good", False: "bad", None: None}[better] if significant else None
    return Cell(f"{delta:+.2f}{SIG if significant else ''}{mark}", tone=tone)


def _change_table(mx: Matrix, m: str) -> TableSpec:
    others = [g for g in mx.labels if g != mx.baseline]
    rows = []
    for det in mx.detectors:
        rows.append([Cell(det)] + [
            _delta_text(mx.value(g, det, f"{m}_delta"),
                        bool(mx.value(g, det, f"{m}_significant")), m)
            for g in others
        ])  # fmt: skip
    name = T.METRIC_NAMES[m]
    seeds = max((g.n for g in mx.groups), default=1)
    notes = [
        f"Δ = loss − {mx.baseline}, in points, paired by seed; ✓ better, ✗ worse. "
        f"{SIG} = significant: the 95% paired t-interval over seeds excludes zero."
    ]
    if seeds < 2:
        notes.append("One seed per loss: no interval, so no change is marked significant.")
    return TableSpec(f"Δ{name} vs {mx.baseline}", ["Detector", *others], rows, notes)


def _best_by(mx: Matrix, keys: list[str], axis: str, m: str) -> list[tuple[str, float]]:
    out = []
    for key in keys:
        sub = mx.frame[mx.frame[axis] == key].dropna(subset=[m])
        if sub.empty:
            out.append(("—", np.nan))
            continue
        row = sub.loc[sub[m].idxmin() if T.LOWER_IS_BETTER[m] else sub[m].idxmax()]
        out.append((str(row["detector" if axis == "group" else "group"]), float(row[m])))
    return out


def _best_tables(mx: Matrix) -> list[TableSpec]:
    specs = []
    for axis, keys, what in (("group", mx.labels, "detector for each loss"),
                             ("detector", mx.detectors, "loss for each detector")):  # fmt: skip
        by = {m: _best_by(mx, keys, axis, m) for m in METRICS}
        rows = [
            [Cell(k)] + [c for m in METRICS for c in (Cell(by[m][i][0]), Cell(num(by[m][i][1])))]
            for i, k in enumerate(keys)
        ]
        cols = ["Loss" if axis == "group" else "Detector", "by FPR95", "FPR95 ↓", "by AUROC",
                "AUROC ↑"]  # fmt: skip
        notes = ["Read off the test averages above: a description of this table, not a choice "
                 "(no setting is picked from it)."]  # fmt: skip
        specs.append(TableSpec(f"Best {what}", cols, rows, notes))
    return specs


def _accuracy_table(mx: Matrix) -> TableSpec:
    cols = ["Loss", *[label for _, label, _ in SUMMARY_KEYS]]
    rows = []
    for g in mx.groups:
        stats = [g.summary_stat(key) for key, _, _ in SUMMARY_KEYS]
        rows.append([Cell(g.label)] + [Cell(num(*s)) if s else Cell("—") for s in stats])
    notes = ["Per loss, mean ± std over seeds; ECE on 15 bins, T fitted on the ID validation "
             "split."]  # fmt: skip
    return TableSpec("ID accuracy and calibration per loss", cols, rows, notes)


def matrix_tables(mx: Matrix) -> list[TableSpec]:
    specs = [_value_table(mx, m) for m in METRICS]
    if mx.baseline is not None:
        specs += [_change_table(mx, m) for m in METRICS]
    return [*specs, *_best_tables(mx), _accuracy_table(mx)]
