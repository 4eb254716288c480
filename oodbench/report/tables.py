"""From tidy metrics rows to the numbers the report shows: groups over seeds, averages, deltas.

Everything here works on pandas frames in percent. Formatting lives in formats.py.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from oodbench.errors import UserError
from oodbench.losses import LOSSES
from oodbench.metrics import paired_interval
from oodbench.report.load import Run
from oodbench.report.stats import paired_p
from oodbench.runs import ood_means

METRIC_COLS = ("fpr95", "auroc", "aupr")
LOWER_IS_BETTER = {"fpr95": True, "auroc": False, "aupr": False, "aurc": True, "augrc": True}
METRIC_NAMES = {
    "fpr95": "FPR95",
    "auroc": "AUROC",
    "aupr": "AUPR",
    "aurc": "AURC",
    "augrc": "AUGRC",
}  # fmt: skip  (AURC, AUGRC: failure detection, report.confidence)
ENDS = ("lo", "hi")  # <metric>_lo, <metric>_hi: the 95% interval of a value, in percent
AVERAGE = "Average"
# Near-OOD (held-out classes of the ID set) and far-OOD (other datasets) apart, as OpenOOD.
NEAR_AVERAGE, FAR_AVERAGE = "Near-OOD average", "Far-OOD average"
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
    for suffix in ("std", *ENDS):
        frame[f"aupr_{suffix}"] = np.where(
            id_pos, frame.get(f"aupr_in_{suffix}", np.nan), frame.get(f"aupr_out_{suffix}", np.nan)
        )
    return frame


def interval_cols(metrics: tuple[str, ...] = METRIC_COLS) -> list[str]:
    return [f"{m}_{end}" for m in metrics for end in ENDS]


def with_averages(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Add one Average row per (run, detector), over the OOD sets every run has for it.

    Its interval is the mean of the sets' bounds: exact if the sets' errors were perfectly
    correlated, wider than the bootstrap of the mean otherwise (they share the ID scores), so
    conservative. A run without intervals (older metrics.csv) has NaN bounds."""
    rows, common_sets = [], {}
    for det, sub in frame.groupby("detector", sort=False):
        per_run = sub.groupby("run")["ood_dataset"].apply(set)
        common = sorted(set.intersection(*per_run.tolist()))
        common_sets[str(det)] = common
        if not common:
            continue
        rows_in = sub[sub["ood_dataset"].isin(common)]
        proto, conv = rows_in["protocol"].iloc[0], rows_in["convention"].iloc[0]  # one of each
        values = [*METRIC_COLS, *(c for c in interval_cols() if c in rows_in.columns)]
        first = rows_in.groupby("run", sort=False).first()
        id_set = str(rows_in["id_dataset"].iloc[0]) if "id_dataset" in rows_in else ""
        near = [o for o in common if is_near(o, id_set)]
        parts = [(AVERAGE, common)]
        if near and len(near) < len(common):
            far = [o for o in common if o not in near]
            parts += [(NEAR_AVERAGE, near), (FAR_AVERAGE, far)]
        for label, sets in parts:
            part = rows_in[rows_in["ood_dataset"].isin(sets)]
            means = ood_means(part, proto, conv, values=values, by=["run"], sort=False)
            for run, vals in means.iterrows():
                row = first.loc[run].to_dict() | vals.to_dict()
                row |= {"run": run, "ood_dataset": label, "detector": det}
                row |= {f"{m}_std": np.nan for m in METRIC_COLS}
                rows.append(row)
    return pd.concat([frame, pd.DataFrame(rows)], ignore_index=True), common_sets


def is_near(ood: str, id_dataset: str) -> bool:
    """Whether ``ood`` is near-OOD for ``id_dataset``: held-out classes of it (a class split),
    or a dataset OpenOOD counts as near (``config.NEAR_SETS``: CIFAR-100 for CIFAR-10)."""
    from oodbench.config import NEAR_SETS
    from oodbench.data import DATASETS

    if ood in NEAR_SETS.get(id_dataset, ()):
        return True
    return ood in DATASETS and DATASETS.get(ood).near_of == id_dataset


def aggregate(frame: pd.DataFrame, groups: list[Group]) -> pd.DataFrame:
    """One row per (group, detector, OOD set): mean, std and what the std is over, and the 95%
    interval (``m_lo``, ``m_hi``) and what it is over (``ci_over``): the run's bootstrap
    interval with one seed, the t-interval of the mean over seeds with several."""
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
            rec |= _interval(sub, m)
        rec["ci_over"] = _ci_over(rec, len(sub))
        records.append(rec)
    out = pd.DataFrame(records)
    for col in ("std_over", "ci_over"):
        if col not in out.columns:
            out[col] = None
    return out


def _interval(sub: pd.DataFrame, m: str) -> dict[str, float]:
    if len(sub) > 1:
        found = paired_interval(sub[m].to_numpy(dtype=float))
        lo, hi = found if found else (np.nan, np.nan)
    else:
        lo, hi = (float(sub[f"{m}_{end}"].iloc[0]) if f"{m}_{end}" in sub else np.nan
                  for end in ENDS)  # fmt: skip
    return {f"{m}_lo": lo, f"{m}_hi": hi}


def _ci_over(rec: dict, n: int) -> str | None:
    if all(np.isnan(rec[c]) for c in interval_cols()):
        return None
    return "seeds" if n > 1 else "bootstrap"


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


def paired_differences(
    per_run: pd.DataFrame, base: Group, other: Group, detector: str, ood: str = AVERAGE
) -> dict[str, object]:
    """``other`` − ``base`` paired by seed on one (detector, OOD set) of ``per_run`` (rows per
    run, e.g. ``with_averages``' frame): per metric ``m_delta_lo``, ``m_delta_hi`` (95%
    t-interval of the mean paired difference; NaN with fewer than two pairs) and
    ``m_significant`` (the interval excludes zero; None when there is no interval; the report
    replaces it by the Holm-corrected verdict, families.correct_rows), ``m_p`` (the paired
    t-test's p) and ``n_pairs``, the seeds both groups ran."""
    rows = per_run[(per_run["detector"] == detector) & (per_run["ood_dataset"] == ood)]
    by_seed = [{r.seed: str(r.path) for r in g.runs} for g in (base, other)]
    seeds = sorted(set(by_seed[0]) & set(by_seed[1]), key=str)
    values = rows.set_index("run")
    out: dict[str, object] = {"n_pairs": len(seeds)}
    for m in METRIC_COLS:
        diffs = [
            float(values.loc[by_seed[1][s], m]) - float(values.loc[by_seed[0][s], m])
            for s in seeds
            if by_seed[0][s] in values.index and by_seed[1][s] in values.index
        ]
        found = paired_interval(diffs)
        lo, hi = found if found else (np.nan, np.nan)
        out |= {f"{m}_delta_lo": lo, f"{m}_delta_hi": hi, f"{m}_p": paired_p(diffs)}
        out[f"{m}_significant"] = None if found is None else bool(lo > 0 or hi < 0)
    return out


def comparison(
    cells: pd.DataFrame, ce: Group, ln: Group, per_run: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per detector, on the average over OOD sets: CE, LogitNorm, delta and relative delta,
    and with ``per_run`` the paired interval of each delta (``paired_differences``)."""
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
        if per_run is not None:
            row |= paired_differences(per_run, ce, ln, str(det))
        rows.append(row)
    return pd.DataFrame(rows)


def is_better(metric: str, delta: float) -> bool | None:
    if not np.isfinite(delta) or delta == 0:
        return None
    return (delta < 0) if LOWER_IS_BETTER[metric] else (delta > 0)
