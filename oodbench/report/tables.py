"""From tidy metrics rows to the numbers the report shows: groups over seeds, averages, deltas.

Everything here works on pandas frames in percent. Formatting lives in formats.py.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from oodbench.errors import UserError
from oodbench.report.load import Run
from oodbench.runs import ood_means
from oodbench.train.losses import LOSSES

METRIC_COLS = ("fpr95", "auroc", "aupr")
LOWER_IS_BETTER = {"fpr95": True, "auroc": False, "aupr": False}
METRIC_NAMES = {"fpr95": "FPR95", "auroc": "AUROC", "aupr": "AUPR"}
AVERAGE = "Average"
PROTOCOL_TEXT = {
    "paper": "paper (each OOD set subsampled to |ID|/5, mean over 10 draws)",
    "full": "full (every OOD sample, one pass)",
}
CONVENTION_TEXT = {
    "id-positive": "ID is the positive class (the paper's): FPR95 = share of OOD samples "
    "accepted at 95% TPR on ID; AUPR = AUPR-In",
    "ood-positive": "OOD is the positive class (OpenOOD / pytorch-ood): FPR95 = share of ID "
    "samples flagged at 95% TPR on OOD; AUPR = AUPR-Out",
}


@dataclass
class Group:
    """Runs that differ only in seed: one column of the report (mean ± std over seeds)."""

    label: str
    loss: str
    model: str
    id_dataset: str
    runs: list[Run] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.runs)

    def summary_stat(self, key: str) -> tuple[float, float] | None:
        """Mean and std over seeds of a summary.json number (None when no run has it)."""
        values = [float(r.summary[key]) for r in self.runs if r.summary.get(key) is not None]
        if not values:
            return None
        return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else np.nan


def make_groups(runs: list[Run]) -> list[Group]:
    """Group runs by (loss, tau, model, ID set); CE first, then LogitNorm by tau, then others."""
    groups: dict[tuple, Group] = {}
    for run in runs:
        key = run.group_key
        if key not in groups:
            groups[key] = Group(run.label, run.loss, run.model, run.id_dataset)
        groups[key].runs.append(run)
    order = {name: i for i, name in enumerate(LOSSES.names())}  # the registry's order
    ordered = sorted(
        groups.values(),
        key=lambda g: (order.get(g.loss, len(order)), g.runs[0].tau or 0.0, g.id_dataset, g.model),
    )
    labels = [g.label for g in ordered]
    for g in ordered:  # same label twice (two models or ID sets): say which is which
        if labels.count(g.label) > 1:
            g.label = f"{g.label} ({g.model}, {g.id_dataset})"
    return ordered


def _check_names(kind: str, wanted: list[str] | None, present: list[str]) -> None:
    for name in wanted or []:
        if name not in present:
            close = difflib.get_close_matches(name, present, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(
                f"unknown {kind} {name!r}; {hint}the runs have: {', '.join(sorted(present))}"
            )


def select(
    frame: pd.DataFrame,
    detectors: list[str] | None = None,
    oods: list[str] | None = None,
    convention: str | None = None,
    protocol: str | None = None,
) -> pd.DataFrame:
    """Keep the asked-for rows; a name the runs do not have is a UserError with a suggestion."""
    _check_names("detector", detectors, frame["detector"].unique().tolist())
    _check_names("OOD set", oods, frame["ood_dataset"].unique().tolist())
    _check_names(
        "convention", [convention] if convention else None, ["id-positive", "ood-positive"]
    )
    _check_names("protocol", [protocol] if protocol else None, ["paper", "full"])
    keep = pd.Series(True, index=frame.index)
    if detectors:
        keep &= frame["detector"].isin(detectors)
    if oods:
        keep &= frame["ood_dataset"].isin(oods)
    if convention:
        keep &= frame["convention"] == convention
    if protocol:
        keep &= frame["protocol"] == protocol
    out = frame[keep].copy()
    if out.empty:
        raise UserError("no metrics rows left after filtering; drop a --detector/--ood filter")
    return out


def check_one_convention(frame: pd.DataFrame) -> tuple[str, str]:
    """Numbers under different protocols or positive classes are never averaged together."""
    pairs = frame[["protocol", "convention"]].drop_duplicates()
    if len(pairs) == 1:
        return str(pairs.iloc[0]["protocol"]), str(pairs.iloc[0]["convention"])
    per_run = frame.groupby("run")[["protocol", "convention"]].apply(
        lambda f: "+".join(sorted(set(f["protocol"] + "/" + f["convention"])))
    )
    listing = "; ".join(f"{run}: {conv}" for run, conv in per_run.items())
    raise UserError(
        f"runs mix protocols/conventions ({listing}); they cannot be averaged together, "
        "pick one with --convention/--protocol or pass runs scored the same way"
    )


def add_aupr(frame: pd.DataFrame) -> pd.DataFrame:
    """AUPR of the positive class: AUPR-In when ID is positive, AUPR-Out when OOD is."""
    id_pos = frame["convention"] == "id-positive"
    frame = frame.copy()
    frame["aupr"] = np.where(id_pos, frame["aupr_in"], frame["aupr_out"])
    frame["aupr_std"] = np.where(
        id_pos, frame.get("aupr_in_std", np.nan), frame.get("aupr_out_std", np.nan)
    )
    return frame


def with_averages(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Add one Average row per (run, detector), over the OOD sets every run has for it."""
    rows, common_sets = [], {}
    for det, sub in frame.groupby("detector", sort=False):
        per_run = sub.groupby("run")["ood_dataset"].apply(set)
        common = sorted(set.intersection(*per_run.tolist()))
        common_sets[str(det)] = common
        if not common:
            continue
        rows_in = sub[sub["ood_dataset"].isin(common)]
        proto, conv = rows_in["protocol"].iloc[0], rows_in["convention"].iloc[0]  # one of each
        means = ood_means(rows_in, proto, conv, values=METRIC_COLS, by=["run"], sort=False)
        first = rows_in.groupby("run", sort=False).first()
        for run, values in means.iterrows():
            row = first.loc[run].to_dict() | values.to_dict()
            row |= {"run": run, "ood_dataset": AVERAGE, "detector": det}
            row |= {f"{m}_std": np.nan for m in METRIC_COLS}
            rows.append(row)
    return pd.concat([frame, pd.DataFrame(rows)], ignore_index=True), common_sets


def aggregate(frame: pd.DataFrame, groups: list[Group]) -> pd.DataFrame:
    """One row per (group, detector, OOD set): mean, std and what the std is over."""
    run_to_group = {str(r.path): g.label for g in groups for r in g.runs}
    frame = frame.assign(group=frame["run"].map(run_to_group))
    records = []
    for (grp, det, ood), sub in frame.groupby(["group", "detector", "ood_dataset"], sort=False):
        rec = {"group": grp, "detector": det, "ood_dataset": ood, "n": len(sub)}
        for m in METRIC_COLS:
            rec[m] = float(sub[m].mean())
            if len(sub) > 1:
                rec[f"{m}_std"], rec["std_over"] = float(sub[m].std(ddof=1)), "seeds"
            else:
                draw_std = sub.get(f"{m}_std")
                rec[f"{m}_std"] = float(draw_std.iloc[0]) if draw_std is not None else np.nan
                if not np.isnan(rec[f"{m}_std"]):
                    rec["std_over"] = "draws"
        records.append(rec)
    out = pd.DataFrame(records)
    if "std_over" not in out.columns:
        out["std_over"] = None
    return out


def cell(cells: pd.DataFrame, group: str, detector: str, ood: str) -> pd.Series | None:
    hit = cells[
        (cells["group"] == group) & (cells["detector"] == detector) & (cells["ood_dataset"] == ood)
    ]
    return hit.iloc[0] if len(hit) else None


def best_groups(values: dict[str, float], metric: str) -> set[str]:
    """The group(s) with the best value of a metric in one row (ties all count as best)."""
    finite = {g: v for g, v in values.items() if v is not None and np.isfinite(v)}
    if len(finite) < 2:
        return set()
    target = min(finite.values()) if LOWER_IS_BETTER[metric] else max(finite.values())
    return {g for g, v in finite.items() if np.isclose(v, target)}


def ce_logitnorm_pair(groups: list[Group]) -> tuple[Group, Group] | None:
    """Exactly one CE group and one LogitNorm group: the comparison the paper makes."""
    ce = [g for g in groups if g.loss == "ce"]
    ln = [g for g in groups if g.loss == "logitnorm"]
    if len(ce) == 1 and len(ln) == 1:
        return ce[0], ln[0]
    return None


def comparison(cells: pd.DataFrame, ce: Group, ln: Group) -> pd.DataFrame:
    """Per detector, on the average over OOD sets: CE, LogitNorm, delta and relative delta."""
    avg = cells[cells["ood_dataset"] == AVERAGE]
    rows = []
    for det in avg["detector"].unique():
        a, b = cell(avg, ce.label, det, AVERAGE), cell(avg, ln.label, det, AVERAGE)
        if a is None or b is None:
            continue
        row: dict[str, object] = {"detector": det}
        for m in METRIC_COLS:
            row[f"{m}_ce"], row[f"{m}_ln"] = a[m], b[m]
            row[f"{m}_delta"] = b[m] - a[m]
            row[f"{m}_rel"] = (b[m] - a[m]) / a[m] * 100 if a[m] else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def is_better(metric: str, delta: float) -> bool | None:
    if not np.isfinite(delta) or delta == 0:
        return None
    return (delta < 0) if LOWER_IS_BETTER[metric] else (delta > 0)
