"""The loss x detector matrix (issue 13): which training loss, with which detector?

One row per (setting, loss column, detector) of the report: FPR95 and AUROC averaged over the
OOD sets every run shares, then mean and 95% t-interval over seeds; the change against CE
paired by seed, with a paired t-interval (``metrics.paired_interval``), its raw p-value, the
Holm-adjusted p and the BH q-value within its family (``report.families``), and "significant"
only when the Holm-adjusted p is below 0.05 (two seeds at least). When the runs have failure.csv
rows (issue 24), AURC and AUGRC of each detector on the ID test set (failure detection: correct
vs misclassified) join the same rows with the same columns, their families on the track
``failure``. Rendered as tables here and as heatmaps in plots.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

import oodbench.report.tables as T
from oodbench.losses import LOSSES
from oodbench.report.families import (
    coinciding_by_group,
    confirm_by_scores,
    family_tests,
    track_of,
)
from oodbench.report.imageboot import add_two_level
from oodbench.report.spec import SUMMARY_KEYS, Cell, TableSpec, num
from oodbench.report.stats import STAR_TEXT

METRICS = ("fpr95", "auroc")
FAILURE_METRICS = ("aurc", "augrc")  # failure detection on the ID test set, lower is better
FAILURE_TRACK = "failure"  # the track of their families (the OOD metrics': far, near, ...)
TWO_LEVEL_TEXT = (" and, from the cached scores, the two-level paired bootstrap over seeds and "
                  "test images (m_delta_2l_lo/hi).")  # fmt: skip
FAILURE_TEXT = ("Failure detection on the ID test set (correct vs misclassified images, each "
                "run's failure.csv), mean over seeds")  # fmt: skip
SIG = "*"  # marks a change whose Holm-adjusted p (within its family) is below 0.05


@dataclass
class Matrix:
    frame: pd.DataFrame  # one row per (setting, group, detector); see loss_matrix
    groups: list[T.Group]
    baseline: str | None  # the CE column's label, None when the runs have no single CE column
    order: list[str] = field(default_factory=list)  # the detectors in the report's order

    @property
    def labels(self) -> list[str]:
        return [g.label for g in self.groups]

    @property
    def detectors(self) -> list[str]:
        return self.order or list(dict.fromkeys(self.frame["detector"]))

    @property
    def failure_metrics(self) -> tuple[str, ...]:
        """AURC and AUGRC when the runs had failure.csv rows, else none."""
        return tuple(m for m in FAILURE_METRICS
                     if m in self.frame and self.frame[m].notna().any())  # fmt: skip

    def value(self, group: str, detector: str, column: str) -> float:
        """A row's value; a detector in both settings (no grid) reads its tuned-family row."""
        hit = self.frame[(self.frame["group"] == group) & (self.frame["detector"] == detector)]
        return float(hit[column].iloc[0]) if len(hit) else float("nan")

    def coincides(self, group: str, detector: str) -> str:
        hit = self.frame[(self.frame["group"] == group) & (self.frame["detector"] == detector)]
        return str(hit["coincides_with"].iloc[0]) if len(hit) else ""


def wanted(groups: list[T.Group]) -> bool:
    """The matrix appears when the runs compare losses beyond the CE / LogitNorm pair."""
    losses = {g.loss for g in groups}
    return len(groups) >= 2 and (len(losses) >= 3 or bool(losses - {"ce", "logitnorm"}))


def per_run_averages(tidy: pd.DataFrame, group_of_run: dict[str, str]) -> pd.DataFrame:
    """One row per (run, detector): the metrics averaged over the OOD sets every run shares,
    with the run's group (column label) and seed."""
    with_avg, _ = T.with_averages(tidy)
    avg = with_avg[with_avg["ood_dataset"] == T.AVERAGE]
    return avg.assign(group=avg["run"].map(group_of_run))


def loss_matrix(
    tidy: pd.DataFrame,
    groups: list[T.Group],
    n_boot: int = 0,
    positive: str = "id",
    failure: pd.DataFrame | None = None,
) -> Matrix:
    """Columns: track, setting, group, loss, detector, n_seeds, coincides_with, and per metric
    m: m (mean over seeds), m_lo, m_hi (interval of the mean), m_delta (vs CE, paired by seed),
    m_delta_lo, m_delta_hi, m_p, m_p_holm, m_q_bh, m_significant (see families.family_tests),
    and with ``n_boot`` > 0 m_delta_2l_lo, m_delta_2l_hi (imageboot.add_two_level). With
    ``failure`` (the runs' failure.csv rows, tagged with ``run`` and ``group`` as
    ``report.confidence.load`` does) the same columns for AURC and AUGRC (``with_failure``)."""
    group_of = {str(r.path): g.label for g in groups for r in g.runs}
    seed_of = {str(r.path): r.seed for g in groups for r in g.runs}
    loss_of = {str(r.path): g.loss for g in groups for r in g.runs}
    avg = per_run_averages(tidy, group_of)
    avg = avg.assign(seed=avg["run"].map(seed_of), loss=avg["run"].map(loss_of))
    ce = [g.label for g in groups if g.loss == "ce"]
    baseline = ce[0] if len(ce) == 1 else None
    rows = tidy[tidy["ood_dataset"] != T.AVERAGE]
    runs_of = {g.label: [str(r.path) for r in g.runs] for g in groups}
    coincide = {g: confirm_by_scores(c, runs_of[g])  # the cached scores have the last word
                for g, c in coinciding_by_group(rows, group_of).items()}  # fmt: skip
    frame = family_tests(avg, [g.label for g in groups], baseline, METRICS, track_of(rows),
                         coincide)  # fmt: skip
    if n_boot > 0:
        sets = rows.groupby(["detector", "run"])["ood_dataset"].apply(set).groupby("detector")
        common = {str(d): sorted(set.intersection(*s.tolist())) for d, s in sets}
        frame = add_two_level(frame, groups, baseline, common, METRICS, n_boot, positive)
    mx = Matrix(frame, groups, baseline, list(dict.fromkeys(avg["detector"])))
    return with_failure(mx, failure) if failure is not None else mx


def with_failure(mx: Matrix, failure: pd.DataFrame) -> Matrix:
    """``mx`` plus AURC and AUGRC per (setting, loss, detector) from the failure.csv rows on
    each run's ID test set: mean and t-interval over seeds, the change against CE paired by
    seed, its raw p, Holm p and BH q within the family one loss vs CE x setting x metric on the
    track ``failure`` (every detector of the matrix that has failure rows), as family_tests
    does for the OOD metrics. Runs without failure rows leave the columns empty (NaN)."""
    if failure.empty or not {"run", "group", "dataset"} <= set(failure.columns):
        return mx
    ids = {g.label: g.id_dataset for g in mx.groups}
    rows = failure[failure["dataset"] == failure["group"].map(ids)]
    rows = rows[rows["detector"].isin(mx.detectors)]
    if rows.empty:
        return mx
    seed_of = {str(r.path): r.seed for g in mx.groups for r in g.runs}
    rows = rows.assign(seed=rows["run"].map(seed_of),
                       loss=rows["group"].map({g.label: g.loss for g in mx.groups}))  # fmt: skip
    tests = family_tests(rows, mx.labels, mx.baseline, FAILURE_METRICS, FAILURE_TRACK)
    keys = ["setting", "group", "detector"]
    cols = [c for c in tests.columns if c.split("_")[0] in FAILURE_METRICS]
    frame = mx.frame.merge(tests[keys + cols], on=keys, how="left")
    for m in FAILURE_METRICS:  # a detector without failure rows: no test, not significant
        frame[f"{m}_significant"] = frame[f"{m}_significant"].astype("boolean").fillna(False)
    return replace(mx, frame=frame)


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
    where = (FAILURE_TEXT if m in FAILURE_METRICS else
             "Mean over the OOD sets every run shares, then mean over seeds")  # fmt: skip
    notes = [f"{where}; ± is half the 95% t-interval of that mean over seeds (none with one "
             "seed). Bold: the best loss for the detector."]  # fmt: skip
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
    failure = m in FAILURE_METRICS
    track = f"failure detection on the ID test set (track {FAILURE_TRACK}), " if failure else ""
    notes = [
        f"Δ = loss − {mx.baseline}, in points, paired by seed; ✓ better, ✗ worse. "
        f"{STAR_TEXT} (every detector of one loss vs {mx.baseline}, {track}one metric, one "
        "setting: tuned rows, or the papers' defaults; a detector without a grid is in the "
        "tuned family here); matrix.csv keeps the raw p, the Holm p and the BH q of each "
        "family, the paired t-interval over seeds (m_delta_lo/hi: seed-to-seed spread only, "
        f"every seed sees the same test images){'.' if failure else TWO_LEVEL_TEXT}",
        *([] if failure else _coinciding_notes(mx)),
    ]
    if seeds < 2:
        notes.append("One seed per loss: no interval, so no change is marked significant.")
    return TableSpec(f"Δ{name} vs {mx.baseline}", ["Detector", *others], rows, notes)


def _coinciding_notes(mx: Matrix) -> list[str]:
    """Detectors that are the same test on a loss's runs (counted once in counts)."""
    pairs = {}
    for g in mx.labels:
        found = [f"{d} = {mx.coincides(g, d)}" for d in mx.detectors if mx.coincides(g, d)]
        if found:
            pairs[g] = ", ".join(found)
    if not pairs:
        return []
    listed = "; ".join(f"{g}: {text}" for g, text in pairs.items())
    return [f"Coinciding detectors (identical metric rows on every run and OOD set of the loss: "
            f"one test, counted once): {listed}."]  # fmt: skip


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
    """Values, then changes against CE, of FPR95 and AUROC and, when the runs have failure
    rows, of AURC and AUGRC; the best detector / loss; accuracy and calibration per loss."""
    specs = []
    for metrics in (METRICS, mx.failure_metrics):
        specs += [_value_table(mx, m) for m in metrics]
        if mx.baseline is not None:
            specs += [_change_table(mx, m) for m in metrics]
    return [*specs, *_best_tables(mx), _accuracy_table(mx)]


def matrix_from_csv(rows: pd.DataFrame) -> pd.DataFrame:
    """The matrix frame (as ``loss_matrix``) from a report's tidy CSV (``report -f csv``):
    how the committed study's matrix CSVs are regenerated without its run dirs."""
    rows = rows[~rows["ood_dataset"].isin([T.AVERAGE, T.NEAR_AVERAGE, T.FAR_AVERAGE])]
    group_of = dict(zip(rows["run"].astype(str), rows["label"].astype(str), strict=True))
    avg = per_run_averages(rows, group_of)
    order = {name: i for i, name in enumerate(LOSSES.names())}  # make_groups' order
    first = rows.drop_duplicates("label")
    labels = [str(lab) for _, lab in sorted(zip(first["loss"].map(order), first["label"],
                                                strict=True))]  # fmt: skip
    ce = list(dict.fromkeys(rows.loc[rows["loss"] == "ce", "label"].astype(str)))
    return family_tests(avg, labels, ce[0] if len(ce) == 1 else None, METRICS, track_of(rows),
                        coinciding_by_group(rows, group_of))  # fmt: skip
