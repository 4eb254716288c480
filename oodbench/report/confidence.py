"""The report's overconfidence sections (issue 24), from each run's failure.csv, shift.csv and
fsood.csv (oodbench.scoring.rowfiles) beside metrics.csv:

* Overconfidence: per loss, side by side, ID calibration, accuracy and calibration under
  covariate shift, failure detection and OOD detection of one confidence score (MSP unless the
  report lacks it), with the change against CE paired by seed, its t-test p and, Holm- and
  BH-adjusted (``report.stats``) over the family "one loss vs CE: every measure of its Δ
  column", the Holm p that marks it significant.
* Failure detection per detector (AURC, E-AURC, AUGRC, AUROC, FPR95 of correct vs wrong).
* Calibration: ECE, NLL and Brier, raw and temperature-scaled.
* Covariate shift per severity and per corruption; full-spectrum OOD per detector.

A value over several seeds is their mean with the 95% t-interval of the mean; with one seed the
run's bootstrap interval where the row has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import oodbench.report.tables as T
from oodbench.metrics import paired_interval
from oodbench.report.load import Run
from oodbench.report.spec import Cell, TableSpec, num, num_ci
from oodbench.report.stats import STAR_TEXT, adjust_families, paired_p, significant
from oodbench.runs import RunDir, read_metrics
from oodbench.scoring import rowfiles as R

SIG = "*"  # a change whose Holm-adjusted p (over its family, FAMILY_TEXT) is below 0.05
FAMILY_TEXT = "{loss} vs {ce}: every measure of the Overconfidence table ({det})"
FAILURE_NAMES = {"aurc": "AURC", "eaurc": "E-AURC", "augrc": "AUGRC", "auroc": "AUROC",
                 "fpr95": "FPR95"}  # fmt: skip
FAILURE_LOWER = {"aurc": True, "eaurc": True, "augrc": True, "auroc": False, "fpr95": True}
CALIBRATION_NAMES = {
    "accuracy": ("Accuracy", False), "ece": ("ECE", True), "ece_ts": ("ECE (T-scaled)", True),
    "nll": ("NLL (nats)", True), "nll_ts": ("NLL (T-scaled)", True), "brier": ("Brier", True),
    "brier_ts": ("Brier (T-scaled)", True), "temperature": ("T", None),
}  # fmt: skip


@dataclass
class Confidence:
    """Every run's overconfidence rows, tagged with ``run`` (path) and ``group`` (label)."""

    failure: pd.DataFrame
    shift: pd.DataFrame
    fsood: pd.DataFrame
    detector: str  # the confidence score of the Overconfidence table

    @property
    def empty(self) -> bool:
        return self.failure.empty and self.shift.empty and self.fsood.empty


def load(groups: list[T.Group], detectors: list[str], protocol: str, convention: str
         ) -> Confidence:  # fmt: skip
    parts: dict[str, list[pd.DataFrame]] = {"failure": [], "shift": [], "fsood": []}
    for g in groups:
        for run in g.runs:
            d = RunDir(run.path)
            tag = {"run": str(run.path), "group": g.label}
            parts["failure"].append(R.read_rows(d.table(R.FAILURE_FILE), R.FAILURE_COLUMNS)
                                    .assign(**tag))  # fmt: skip
            parts["shift"].append(R.read_rows(d.table(R.SHIFT_FILE), R.SHIFT_COLUMNS)
                                  .assign(**tag))  # fmt: skip
            fs = read_metrics(d.table(R.FSOOD_FILE))
            fs = fs[(fs["protocol"] == protocol) & (fs["convention"] == convention)]
            parts["fsood"].append(fs.assign(**tag))
    frames = {k: pd.concat([f for f in v if len(f)] or [pd.DataFrame()], ignore_index=True)
              for k, v in parts.items()}  # fmt: skip
    if len(frames["failure"]):
        frames["failure"] = frames["failure"][frames["failure"]["detector"].isin(detectors)]
    if len(frames["fsood"]):
        frames["fsood"] = frames["fsood"][frames["fsood"]["detector"].isin(detectors)]
    det = "msp" if "msp" in detectors else detectors[0]
    return Confidence(frames["failure"], frames["shift"], frames["fsood"], det)


# ------------------------------------------------------------------ per-run numbers


def measures(conf: Confidence, per_run: pd.DataFrame, runs: list[Run]) -> pd.DataFrame:
    """One row per run, one column per quantity of the Overconfidence table (percent)."""
    det, records = conf.detector, []
    for run in runs:
        key, rec = str(run.path), {"run": str(run.path), "seed": run.seed}
        sh = conf.shift[conf.shift["run"] == key] if len(conf.shift) else pd.DataFrame()
        if len(sh):
            clean = sh[sh["corruption"] == R.CLEAN]
            shifted = sh[sh["corruption"] != R.CLEAN]
            for k in R.CALIBRATION:
                rec[k] = float(clean[k].iloc[0]) if len(clean) else np.nan
                rec[f"shift_{k}"] = float(shifted[k].mean()) if len(shifted) else np.nan
            rec["temperature"] = float(clean["temperature"].iloc[0]) if len(clean) else np.nan
        fl = conf.failure[(conf.failure["run"] == key) & (conf.failure["detector"] == det)] \
            if len(conf.failure) else pd.DataFrame()  # fmt: skip
        for which, name in (("id", run.id_dataset), ("mix", f"{run.id_dataset}-shifted-mix")):
            row = fl[fl["dataset"] == name] if len(fl) else fl
            for m in ("aurc", "augrc", "auroc"):
                rec[f"fail_{which}_{m}"] = float(row[m].iloc[0]) if len(row) else np.nan
        avg = per_run[(per_run["run"] == key) & (per_run["detector"] == det)
                      & (per_run["ood_dataset"] == T.AVERAGE)]  # fmt: skip
        for m in ("fpr95", "auroc"):
            rec[f"ood_{m}"] = float(avg[m].iloc[0]) if len(avg) else np.nan
        fs = conf.fsood[(conf.fsood["run"] == key) & (conf.fsood["detector"] == det)] \
            if len(conf.fsood) else pd.DataFrame()  # fmt: skip
        for m in ("fpr95", "auroc"):
            rec[f"fsood_{m}"] = float(fs[m].mean()) if len(fs) else np.nan
        records.append(rec)
    return pd.DataFrame(records)


# (column of measures(), label, lower is better; None: no direction)
OVERCONFIDENCE_ROWS = [
    ("accuracy", "ID accuracy", False), ("ece", "ID ECE", True),
    ("ece_ts", "ID ECE, T-scaled", True), ("nll", "ID NLL (nats)", True),
    ("brier", "ID Brier", True), ("temperature", "Temperature T (validation)", None),
    ("shift_accuracy", "Shift: accuracy", False), ("shift_ece", "Shift: ECE", True),
    ("shift_ece_ts", "Shift: ECE, T from ID validation", True),
    ("fail_id_aurc", "Failure (ID): AURC", True), ("fail_id_augrc", "Failure (ID): AUGRC", True),
    ("fail_id_auroc", "Failure (ID): AUROC", False),
    ("fail_mix_aurc", "Failure (shifted): AURC", True),
    ("fail_mix_auroc", "Failure (shifted): AUROC", False),
    ("ood_fpr95", "OOD: FPR95", True), ("ood_auroc", "OOD: AUROC", False),
    ("fsood_fpr95", "Full-spectrum OOD: FPR95", True),
    ("fsood_auroc", "Full-spectrum OOD: AUROC", False),
]  # fmt: skip


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    v = [x for x in values if np.isfinite(x)]
    if not v:
        return np.nan, np.nan, np.nan
    ci = paired_interval(v)
    return float(np.mean(v)), *(ci if ci else (np.nan, np.nan))


def _change(ours: pd.DataFrame, base: pd.DataFrame, col: str) -> dict[str, float]:
    """Mean change against the baseline paired by seed, its 95% t-interval and the t-test's
    two-sided p (NaN with fewer than two shared seeds)."""
    a, b = ours.set_index("seed")[col], base.set_index("seed")[col]
    diffs = [float(a[s] - b[s]) for s in a.index if s in b.index and np.isfinite(a[s] - b[s])]
    if not diffs:
        return dict(NO_CHANGE)
    lo, hi = paired_interval(diffs) or (np.nan, np.nan)
    return {"delta": float(np.mean(diffs)), "delta_lo": lo, "delta_hi": hi,
            "delta_p": paired_p(diffs)}  # fmt: skip


NO_CHANGE = {"delta": np.nan, "delta_lo": np.nan, "delta_hi": np.nan, "delta_p": np.nan}


def change_cell(delta: float, lo: float, hi: float, lower: bool | None, sig: bool) -> Cell:
    """The change, ✓/✗ by direction, its (uncorrected) 95% t-interval, and ``SIG`` and a
    colour when ``sig`` (Holm-adjusted p < 0.05 within its family)."""
    if not np.isfinite(delta):
        return Cell("—")
    better = None if lower is None or delta == 0 else (delta < 0) == lower
    mark = {True: " ✓", False: " ✗", None: ""}[better]
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return Cell(f"{delta:+.2f}{mark} [n/a]")
    tone = {True: "good", False: "bad", None: None}[better] if sig else None
    return Cell(f"{delta:+.2f}{mark} [{lo:+.2f}, {hi:+.2f}]{SIG if sig else ''}", tone=tone)


def overconfidence_frame(table: pd.DataFrame, groups: list[T.Group], det: str = "msp"
                         ) -> pd.DataFrame:  # fmt: skip
    """Tidy: one row per (group, measure) with mean, interval, the change vs CE, its interval,
    raw p (delta_p), Holm p (delta_p_holm) and BH q (delta_q_bh) within ``family`` (one loss vs
    CE, every measure of the table: ``FAMILY_TEXT``), and significant (Holm p < 0.05)."""
    by_group = {g.label: table[table["run"].isin([str(r.path) for r in g.runs])] for g in groups}
    ce = [g.label for g in groups if g.loss == "ce"]
    base = by_group[ce[0]] if len(ce) == 1 else None
    records = []
    for g in groups:
        sub = by_group[g.label]
        for col, label, lower in OVERCONFIDENCE_ROWS:
            if col not in sub:
                continue
            mean, lo, hi = _mean_ci(sub[col].tolist())
            rec = {"group": g.label, "loss": g.loss, "measure": col, "label": label,
                   "n_seeds": len(sub), "value": mean, "value_lo": lo, "value_hi": hi}  # fmt: skip
            compared = base is not None and g.label != ce[0]
            rec |= _change(sub, base, col) if compared else NO_CHANGE
            rec |= {"lower_is_better": lower, "family": FAMILY_TEXT.format(
                loss=g.label, ce=ce[0], det=det) if compared else ""}  # fmt: skip
            records.append(rec)
    frame = pd.DataFrame(records)
    if frame.empty:
        return frame
    frame = adjust_families(frame, ["family"], "delta_p")
    frame["significant"] = [significant(p) for p in frame["delta_p_holm"]]
    return frame


def overconfidence_table(frame: pd.DataFrame, groups: list[T.Group], det: str) -> TableSpec:
    ce = next((g.label for g in groups if g.loss == "ce"), None)
    cols = ["Measure"]
    for g in groups:
        cols += [g.label] + ([f"Δ {g.label} vs {ce}"] if ce and g.label != ce else [])
    rows = []
    for col, label, lower in OVERCONFIDENCE_ROWS:
        hit = frame[frame["measure"] == col]
        if hit.empty or not np.isfinite(hit["value"]).any():
            continue
        row = [Cell(f"{label} {'' if lower is None else '↓' if lower else '↑'}".strip())]
        for g in groups:
            r = hit[hit["group"] == g.label]
            if r.empty:
                row += [Cell("—")] + ([Cell("—")] if ce and g.label != ce else [])
                continue
            r = r.iloc[0]
            half = (r["value_hi"] - r["value_lo"]) / 2 if np.isfinite(r["value_lo"]) else None
            row.append(Cell(num(r["value"], half, 3 if col == "temperature" else 2)))
            if ce and g.label != ce:
                row.append(change_cell(r["delta"], r["delta_lo"], r["delta_hi"], lower,
                                       bool(r["significant"])))  # fmt: skip
        rows.append(row)
    notes = [
        f"Confidence score: {det} (failure, OOD and full-spectrum rows). ID = the ID test set; "
        "Shift = mean over every corruption and severity; Failure (shifted) = the shifted mix "
        "(one corrupted copy per test image); OOD = mean over the test OOD sets; full-spectrum "
        "OOD counts the shifted mix as ID (OpenOOD v1.5's FSOOD).",
        "Values in %, NLL in nats; ± is half the 95% t-interval over seeds (none with one "
        f"seed). Δ = loss − {ce}, paired by seed, with its 95% paired t-interval (uncorrected); "
        f"n/a: one seed, no interval.",
        *_significance_notes(frame, ce, det),
    ]
    return TableSpec("Overconfidence, per loss", cols, rows, notes)


def _significance_notes(frame: pd.DataFrame, ce: str | None, det: str) -> list[str]:
    """Which family Holm corrects over, or why nothing can be significant."""
    if ce is None:
        return []
    tested = frame[np.isfinite(frame["delta_p"].astype(float))]
    if tested.empty:
        return ["One seed per loss (or no seed shared with CE): no paired test is possible, so "
                "no change is marked significant; Δ is the difference of single runs."]  # fmt: skip
    k = tested.groupby("family").size()
    sizes = ", ".join(f"{n} for {f.split(' vs ')[0]}" for f, n in k.items())
    family = FAMILY_TEXT.format(loss="one loss", ce=ce, det=det)
    return [f"{STAR_TEXT}, the family being {family}: one paired t-test per measure "
            f"(scipy), Holm and BH with statsmodels over the family's tests ({sizes}); "
            "colour as ✓/✗ only when significant. The CSV/JSON keep delta_p, delta_p_holm "
            "and delta_q_bh."]  # fmt: skip


# ------------------------------------------------------------------ per-detector tables


def _agg(sub: pd.DataFrame, m: str) -> str:
    """One seed: the value with its bootstrap interval; several: mean ± half the t-interval."""
    if sub.empty:
        return "—"
    if len(sub) == 1:
        r = sub.iloc[0]
        return num_ci(float(r[m]), float(r.get(f"{m}_lo", np.nan)), float(r.get(f"{m}_hi", np.nan)))
    mean, lo, hi = _mean_ci(sub[m].astype(float).tolist())
    return num(mean, (hi - lo) / 2 if np.isfinite(lo) else None)


def failure_table(conf: Confidence, groups: list[T.Group], detectors: list[str], mix: bool
                  ) -> TableSpec | None:  # fmt: skip
    fl = conf.failure
    if fl.empty:
        return None
    ids = {g.label: g.id_dataset for g in groups}
    want = fl["dataset"] == fl["group"].map(lambda g: f"{ids[g]}-shifted-mix" if mix else ids[g])
    fl = fl[want]
    if fl.empty:
        return None
    metrics = ("aurc", "augrc", "auroc", "fpr95")
    cols = ["Detector"] + [f"{g.label} {FAILURE_NAMES[m]}{'↓' if FAILURE_LOWER[m] else '↑'}"
                           for g in groups for m in metrics]  # fmt: skip
    rows = []
    for det in detectors:
        row = [Cell(det)]
        for g in groups:
            sub = fl[(fl["group"] == g.label) & (fl["detector"] == det)]
            row += [Cell(_agg(sub, m)) for m in metrics]
        rows.append(row)
    where = "the shifted mix (one corrupted copy per ID test image)" if mix else "the ID test set"
    notes = [f"Correct vs misclassified predictions on {where}; the score ranks confidence. "
             "AURC (Geifman & El-Yaniv 2017) and AUGRC (Traub et al. 2024) lower is better; "
             "AUROC/FPR95 with correct as positive; E-AURC and every interval in the CSV/JSON. "
             "[lo, hi]: 95% bootstrap interval over test images (1000 resamples)."]  # fmt: skip
    title = "Failure detection under shift" if mix else "Failure detection on the ID test set"
    return TableSpec(title, cols, rows, notes)


def calibration_table(conf: Confidence, groups: list[T.Group]) -> TableSpec | None:
    sh = conf.shift
    if sh.empty:
        return None
    clean = sh[sh["corruption"] == R.CLEAN]
    cols = ["Loss", *(f"{n}{'' if lo is None else '↓' if lo else '↑'}"
                      for n, lo in CALIBRATION_NAMES.values())]  # fmt: skip
    rows = []
    for g in groups:
        sub = clean[clean["group"] == g.label]
        cells = []
        for k in CALIBRATION_NAMES:
            mean, lo, hi = _mean_ci(sub[k].astype(float).tolist())
            digits = 3 if k in ("temperature", "nll", "nll_ts") else 2
            cells.append(Cell(num(mean, (hi - lo) / 2 if np.isfinite(lo) else None, digits)))
        rows.append([Cell(g.label), *cells])
    notes = ["ID test set. ECE: 15 equal-width bins on the max softmax probability; Brier: "
             "multi-class, sum over classes (0-200 in %); NLL in nats. T-scaled: softmax(f/T) "
             "with T fitted on the ID validation split (never the test set)."]  # fmt: skip
    return TableSpec("Calibration", cols, rows, notes)


def shift_tables(conf: Confidence, groups: list[T.Group]) -> list[TableSpec]:
    sh = conf.shift
    if sh.empty or (sh["corruption"] != R.CLEAN).sum() == 0:
        return []
    specs = []
    for axis, title in (("severity", "Covariate shift by severity"),
                        ("corruption", "Covariate shift by corruption")):  # fmt: skip
        keys = sorted(set(sh[axis]), key=lambda k: (str(k) != R.CLEAN, str(k)))
        vals = ("accuracy", "ece", "ece_ts", "msp_aurc")
        names = ("Acc↑", "ECE↓", "ECE-TS↓", "MSP AURC↓")
        cols = [axis.capitalize()] + [f"{g.label} {n}" for g in groups for n in names]
        rows = []
        for key in keys:
            row = [Cell(str(key))]
            for g in groups:
                sub = sh[(sh["group"] == g.label) & (sh[axis] == key)]
                per_run = sub.groupby("run")[list(vals)].mean()  # over the other axis
                for v in vals:
                    mean, lo, hi = _mean_ci(per_run[v].tolist()) if len(per_run) else (np.nan,) * 3
                    row.append(Cell(num(mean, (hi - lo) / 2 if np.isfinite(lo) else None)))
            rows.append(row)
        other = "corruptions" if axis == "severity" else "severities 1-5"
        notes = [f"Mean over {other}; {R.CLEAN} / 0 is the clean ID test set. ECE-TS uses the "
                 "temperature fitted on the clean ID validation split. MSP AURC: failure "
                 "detection of the max softmax probability on that set."]  # fmt: skip
        specs.append(TableSpec(title, cols, rows, notes))
    return specs


def fsood_table(conf: Confidence, groups: list[T.Group], detectors: list[str]
                ) -> TableSpec | None:  # fmt: skip
    fs = conf.fsood
    if fs.empty:
        return None
    cols = ["Detector"] + [f"{g.label} {n}" for g in groups for n in ("FPR95↓", "AUROC↑")]
    rows = []
    for det in detectors:
        row = [Cell(det)]
        for g in groups:
            sub = fs[(fs["group"] == g.label) & (fs["detector"] == det)]
            per_run = sub.groupby("run")[["fpr95", "auroc"]].mean()
            for m in ("fpr95", "auroc"):
                mean, lo, hi = _mean_ci(per_run[m].tolist()) if len(per_run) else (np.nan,) * 3
                row.append(Cell(num(mean, (hi - lo) / 2 if np.isfinite(lo) else None)))
        rows.append(row)
    notes = ["Full-spectrum OOD (OpenOOD v1.5's FSOOD): the ID side is the ID test set plus the "
             "shifted mix (one corrupted copy per test image), both counted as ID; mean over "
             "the test OOD sets. Reported apart from the standard OOD tables."]  # fmt: skip
    return TableSpec("Full-spectrum OOD, average over OOD sets", cols, rows, notes)


Sections = list[tuple[str, list[TableSpec]]]


def sections(conf: Confidence, per_run: pd.DataFrame, groups: list[T.Group],
             detectors: list[str]) -> tuple[Sections, pd.DataFrame]:  # fmt: skip
    """The report's overconfidence sections and the Overconfidence frame (for CSV/JSON)."""
    if conf.empty:
        return [], pd.DataFrame()
    runs = [r for g in groups for r in g.runs]
    frame = overconfidence_frame(measures(conf, per_run, runs), groups, conf.detector)
    out: Sections = []
    if len(frame):
        out.append(("Overconfidence", [overconfidence_table(frame, groups, conf.detector)]))
    tables = [failure_table(conf, groups, detectors, mix=False),
              failure_table(conf, groups, detectors, mix=True)]  # fmt: skip
    out.append(("Failure detection", [t for t in tables if t is not None]))
    cal = calibration_table(conf, groups)
    out.append(("Calibration", [cal] if cal else []))
    out.append(("Covariate shift", shift_tables(conf, groups)))
    fs = fsood_table(conf, groups, detectors)
    out.append(("Full-spectrum OOD", [fs] if fs else []))
    return [(title, specs) for title, specs in out if specs], frame


def attach(report: Any) -> Sections:
    """Load the runs' overconfidence rows into ``report`` (build.Report) and return its
    sections: Overconfidence, failure detection, calibration, shift, full-spectrum OOD."""
    conf = load(report.groups, report.detectors, report.protocol, report.convention)
    report.confidence = conf
    found, report.overconfidence = sections(conf, report.per_run, report.groups,
                                            report.detectors)  # fmt: skip
    return found
