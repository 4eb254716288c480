"""``report --format openood``: per-detector CSVs in the layout OpenOOD v1.5 writes, so that our
numbers can be put beside its leaderboard and its result files.

OpenOOD v1.5 (tag v1.5, commit 8d44375e4c695d03d2b97850b754f24fd4bda447) writes, for one
training setting ``<root>`` holding seeds ``s0, s1, ...``, ``<root>/ood/<postprocessor>.csv``
(scripts/eval_ood.py with ``--save-csv``). Its rows are the frame of
``Evaluator.eval_ood`` (openood/evaluation_api/evaluator.py): each near-OOD set, ``nearood``
(their mean), each far-OOD set, ``farood``; its columns ``FPR@95, AUROC, AUPR_IN, AUPR_OUT,
CCR_4, CCR_3, CCR_2, CCR_1, ACC`` in percent; every cell is ``"{mean:.2f} ± {std:.2f}"`` over
the seeds (numpy's std, ddof 0) and the index column has no header. ACC is the ID test accuracy,
the same in every row.

We write ``<out>/<ID set>_<model>_<loss>/ood/<detector>.csv`` per column of the report and
detector. CCR (correct classification rate at an FPR) is not computed by oodbench: those cells
are empty. A track without sets has no block. FPR@95 follows the report's convention: at the
v1.5 tag OpenOOD's is ID-positive (our default); from commit 873e8c2 on it is OOD-positive
(``--convention ood-positive``). OpenOOD scores every OOD image (``--protocol full``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.io import atomic_write_text
from oodbench.report.spec import Report
from oodbench.report.tables import AVERAGE, FAR_AVERAGE, NEAR_AVERAGE, Group
from oodbench.runs import file_key

COLUMNS = ["FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "CCR_4", "CCR_3", "CCR_2", "CCR_1", "ACC"]
OURS = {"FPR@95": "fpr95", "AUROC": "auroc", "AUPR_IN": "aupr_in", "AUPR_OUT": "aupr_out"}
TRACKS = (("near", "nearood"), ("far", "farood"))


def folder_name(group: Group) -> str:
    """``cifar10_resnet18_32x32_LogitNorm_tau=0.04``: OpenOOD names a setting's folder alike."""
    text = f"{group.id_dataset}_{group.model}_{group.label.replace('τ', 'tau')}"
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("_.")


def _cell(values: list[float]) -> str:
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return ""
    return f"{np.mean(values):.2f} \u00b1 {np.std(values):.2f}"


def detector_table(rows: pd.DataFrame, group: Group) -> pd.DataFrame:
    """One detector's rows of one group -> OpenOOD's frame (index = set or track mean)."""
    runs = [str(r.path) for r in group.runs]
    accuracy = [float(r.summary.get("id_accuracy", np.nan)) for r in group.runs]
    by_run = {run: part.set_index("ood_dataset") for run, part in rows.groupby("run")}
    index, cells = [], []
    for track, mean_name in TRACKS:
        sets = list(dict.fromkeys(rows.loc[rows["track"] == track, "ood_dataset"]))
        if not sets:
            continue
        for name in [*sets, mean_name]:
            keep = sets if name == mean_name else [name]
            row = {}
            for column, ours in OURS.items():
                # per seed: the value (or the mean over the track's sets), then over seeds
                per_seed = [float(by_run[r].reindex(keep)[ours].mean()) if r in by_run
                            else np.nan for r in runs]  # fmt: skip
                row[column] = _cell(per_seed)
            row |= {c: "" for c in COLUMNS if c.startswith("CCR")}
            row["ACC"] = _cell(accuracy)
            index.append(name)
            cells.append(row)
    return pd.DataFrame(cells, index=index, columns=COLUMNS)


def write_openood(report: Report, out: Path) -> list[Path]:
    """Every (report column, detector) CSV under ``out``; return the paths written."""
    tidy = report.tidy[~report.tidy["ood_dataset"].isin([AVERAGE, NEAR_AVERAGE, FAR_AVERAGE])]
    written = []
    for group in report.groups:
        mine = tidy[tidy["run"].isin([str(r.path) for r in group.runs])]
        for det, rows in mine.groupby("detector", sort=False):
            path = out / folder_name(group) / "ood" / f"{file_key(str(det))}.csv"
            atomic_write_text(path, detector_table(rows, group).to_csv(lineterminator="\n"))
            written.append(path)
    return written
