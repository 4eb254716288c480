"""Comparisons against CE, grouped into the declared families that Holm and BH correct over.

A family is every detector of one loss against CE, on one track, for one metric, in one
setting. The setting comes from the detector labels: ``react[tuned]`` rows are the *tuned*
setting, the untuned rows of a detector that also has a tuned row are the *defaults* setting
(the papers' defaults), and a detector without a grid (``msp``) belongs to both, as it would
be run the same way in either. With no tuned row at all there is one setting, ``defaults``.

``family_tests`` works on per-run rows (one row per run and detector, a metric averaged over
the OOD sets), so it serves live reports (``matrix.loss_matrix``) and the committed study CSVs
(``scripts/study_tables.py``) alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.detectors.base import TUNED
from oodbench.metrics import paired_interval
from oodbench.report.stats import (
    adjust_families,
    coinciding,
    first_of_cluster,
    paired_p,
    same_ranking,
    significant,
)
from oodbench.runs import SCORES_TENSOR, RunDir, read_arrays

SETTINGS = ("tuned", "defaults")
FAMILY = ["track", "setting", "group"]  # and the metric, which names the columns
IDENTICAL = ["fpr95", "auroc", "aupr_in", "aupr_out"]  # rows equal in all of these coincide


def settings_of(labels: list[str]) -> dict[str, list[str]]:
    """Each detector label -> the settings (families) it belongs to."""
    tuned = {label for label in labels if label.endswith(TUNED)}
    if not tuned:
        return {label: ["defaults"] for label in labels}
    has_grid = {label.removesuffix(TUNED) for label in tuned}
    return {
        label: ["tuned"] if label in tuned else ["defaults"] if label in has_grid else
        list(SETTINGS)
        for label in labels
    }  # fmt: skip


def track_of(tidy: pd.DataFrame) -> str:
    """The track of an average over every OOD set of ``tidy``: far, near, or far+near."""
    if "track" not in tidy.columns:
        return "all"
    return "+".join(sorted(set(tidy["track"].dropna().astype(str)))) or "all"


def coinciding_by_group(tidy: pd.DataFrame, group_of_run: dict[str, str]) -> dict[str, dict]:
    """Per group: detector -> its cluster of detectors that coincide on every run and OOD set
    of the group (identical fpr95, auroc, aupr_in and aupr_out rows; see stats.coinciding)."""
    values = [c for c in IDENTICAL if c in tidy.columns and tidy[c].notna().any()]
    rows = tidy[tidy["run"].isin(group_of_run)]
    rows = rows.assign(group=rows["run"].map(group_of_run))
    return {str(g): coinciding(part, ["run", "ood_dataset"], values)
            for g, part in rows.groupby("group", sort=False)}  # fmt: skip


def family_tests(
    per_run: pd.DataFrame,
    labels: list[str],
    baseline: str | None,
    metrics: tuple[str, ...],
    track: str,
    coincide: dict[str, dict] | None = None,
) -> pd.DataFrame:
    """One row per (setting, group, detector) of ``per_run`` (columns group, loss, seed,
    detector and the metrics): n_seeds, per metric the mean and its t-interval over seeds, and
    against ``baseline`` (paired by seed) m_delta, m_delta_lo/hi (paired t-interval), m_p,
    m_p_holm, m_q_bh (within the family track x setting x group) and m_significant (Holm
    p < 0.05); coincides_with names the detector this one coincides with on the group."""
    coincide = coincide or {}
    dets = list(dict.fromkeys(per_run["detector"]))
    where = settings_of(dets)
    parts = {key: sub.set_index("seed") for key, sub in
             per_run.groupby(["group", "detector"], sort=False)}  # fmt: skip
    records = []
    for setting in [s for s in SETTINGS if any(s in v for v in where.values())]:
        family = [d for d in dets if setting in where[d]]
        for g in labels:
            same = first_of_cluster(family, coincide.get(g, {}))
            for det in family:
                sub = parts.get((g, det))
                if sub is None:
                    continue
                base = parts.get((baseline, det))
                rec = {"track": track, "setting": setting, "group": g,
                       "loss": str(sub["loss"].iloc[0]), "detector": det, "n_seeds": len(sub),
                       "coincides_with": same.get(det, "")}  # fmt: skip
                for m in metrics:
                    rec |= _mean(sub[m].tolist(), m)
                    rec |= _change(sub, base, m) if g != baseline else _no_change(m)
                records.append(rec)
    frame = pd.DataFrame(records)
    for m in metrics:
        if frame.empty:
            break
        frame = adjust_families(frame, FAMILY, f"{m}_p")
        frame[f"{m}_significant"] = [significant(p) for p in frame[f"{m}_p_holm"]]
    return frame


def _mean(values: list[float], m: str) -> dict[str, float]:
    interval = paired_interval(values)
    lo, hi = interval if interval else (np.nan, np.nan)
    return {m: float(np.mean(values)), f"{m}_lo": lo, f"{m}_hi": hi}


def _no_change(m: str) -> dict[str, float]:
    return {f"{m}_delta": np.nan, f"{m}_delta_lo": np.nan, f"{m}_delta_hi": np.nan,
            f"{m}_p": np.nan}  # fmt: skip


def _change(sub: pd.DataFrame, base: pd.DataFrame | None, m: str) -> dict[str, float]:
    """``sub`` and ``base``: one detector's rows of two groups, indexed by seed."""
    if base is None or base.empty:
        return _no_change(m)
    ours, theirs = sub[m], base[m]
    common = [s for s in ours.index if s in theirs.index]
    if not common:  # no shared seed: the difference of the means, without an interval
        return _no_change(m) | {f"{m}_delta": float(ours.mean() - theirs.mean())}
    diffs = [float(ours[s] - theirs[s]) for s in common]
    interval = paired_interval(diffs)
    lo, hi = interval if interval else (np.nan, np.nan)
    return {f"{m}_delta": float(np.mean(diffs)), f"{m}_delta_lo": lo, f"{m}_delta_hi": hi,
            f"{m}_p": paired_p(diffs)}  # fmt: skip


def count_significant(part: pd.DataFrame, metric: str) -> tuple[int, int]:
    """(significant, all) comparisons of one family, a coinciding detector counted once."""
    key = part["coincides_with"].where(part["coincides_with"] != "", part["detector"])
    sig = key[part[f"{metric}_significant"].astype(bool)]
    return sig.nunique(), key.nunique()


def correct_rows(frame: pd.DataFrame, metrics: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` (one row per detector, with ``m_p``) plus m_p_holm, m_q_bh and m_significant,
    each family being one setting's detectors (``settings_of``); a detector in both settings
    shows its tuned family's values."""
    where = settings_of([str(d) for d in frame["detector"]])
    long = pd.concat([frame.assign(setting=s)[[where[str(d)].count(s) > 0
                                               for d in frame["detector"]]]
                      for s in SETTINGS], ignore_index=True)  # fmt: skip
    for m in metrics:
        long = adjust_families(long, ["setting"], f"{m}_p")
    first = long.drop_duplicates("detector").set_index("detector")
    out = frame.copy()
    for m in metrics:
        for col in (f"{m}_p_holm", f"{m}_q_bh"):
            out[col] = out["detector"].map(first[col])
        # None: no p-value (one seed), as paired_differences says
        out[f"{m}_significant"] = [significant(p) if np.isfinite(p) else None
                                   for p in out[f"{m}_p_holm"]]  # fmt: skip
    return out


def confirm_by_scores(cluster: dict[str, int], run_paths: list[str]) -> dict[str, int]:
    """Keep a detector in its metric-row cluster only where the runs' cached scores (scores/)
    agree: on every run and set both detectors saved, the same ranking (``same_ranking``).
    Runs without cached scores keep the metric-row verdict."""
    first: dict[int, str] = {}
    kept = {}
    for det, number in cluster.items():
        lead = first.setdefault(number, det)
        if lead == det or all(_same_scores(RunDir(Path(p)), lead, det) for p in run_paths):
            kept[det] = number
    return {d: n for d, n in kept.items() if list(kept.values()).count(n) > 1}


def _same_scores(run: RunDir, a: str, b: str) -> bool:
    folder_a, folder_b = run.scores / a, run.scores / b
    for path in sorted(folder_a.glob("*.safetensors")) if folder_a.is_dir() else []:
        other = folder_b / path.name
        if other.is_file() and not same_ranking(read_arrays(path)[SCORES_TENSOR],
                                                read_arrays(other)[SCORES_TENSOR]):  # fmt: skip
            return False
    return True
