"""The report's data: ``Report`` (what ``build`` assembles) and the table types it lays out
(``TableSpec`` of ``Cell``), below both the builder and the formats that render them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oodbench.report.load import Run
from oodbench.report.tables import Group

SUMMARY_KEYS = (
    ("id_accuracy", "ID accuracy", False),
    ("ece", "ECE", True),
    ("ece_ts", "ECE (temperature-scaled)", True),
    ("temperature", "Temperature T", None),
)  # (key, label, lower is better; None: no direction)


@dataclass
class Cell:
    text: str
    best: bool = False  # best value of its row: bold in markdown, green in rich
    tone: str | None = None  # "good" / "bad" for deltas


@dataclass
class TableSpec:
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)


def num(value: Any, std: Any = None, digits: int = 2) -> str:
    """'12.34', '12.34 ± 0.56', or '—' for a missing number."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    text = f"{value:.{digits}f}"
    if std is not None and isinstance(std, float) and math.isfinite(std):
        text += f" ± {std:.{digits}f}"
    return text


def num_ci(value: Any, lo: Any, hi: Any, std: Any = None, digits: int = 2) -> str:
    """'12.34 [11.02, 13.71]' with a 95% interval, else ``num(value, std)`` ('12.34 ± 0.56')."""
    finite = [isinstance(x, float | int) and math.isfinite(x) for x in (value, lo, hi)]
    if not all(finite):
        return num(value, std, digits)
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


@dataclass
class Report:
    runs: list[Run]
    groups: list[Group]
    tidy: pd.DataFrame  # one row per (run, detector, OOD set), with reference columns
    cells: pd.DataFrame  # aggregated over seeds, with Average rows
    protocol: str
    convention: str
    common_oods: dict[str, list[str]]
    comparison: pd.DataFrame | None = None
    per_run: pd.DataFrame | None = None  # tidy rows per run plus Average rows (seed pairing)
    changes: pd.DataFrame | None = None
    header: list[str] = field(default_factory=list)
    sections: list[tuple[str, list[TableSpec]]] = field(default_factory=list)
    references: list[tuple[str, str]] = field(default_factory=list)  # (source, citation)
    plots: list[tuple[str, Path]] = field(default_factory=list)
    matrix: Any = None  # report.matrix.Matrix when the runs compare several losses
    produced: Any = None  # report.produced.Produced: commands, versions, data checksums
    ranks: Any = None  # list of report.ranks.RankTest (empty: too few blocks)
    confidence: Any = None  # report.confidence.Confidence: failure, shift and FSOOD rows
    overconfidence: pd.DataFrame | None = None  # the Overconfidence table, tidy

    @property
    def detectors(self) -> list[str]:
        return list(dict.fromkeys(self.tidy["detector"]))

    def groups_json(self) -> list[dict[str, Any]]:
        out = []
        for g in self.groups:
            stats = {k: g.summary_stat(k) for k, _, _ in SUMMARY_KEYS}
            out.append(
                {
                    "label": g.label,
                    "loss": g.loss,
                    "model": g.model,
                    "id_dataset": g.id_dataset,
                    "n_seeds": g.n,
                    "runs": [str(r.path) for r in g.runs],
                    "seeds": [r.seed for r in g.runs],
                    "summary": {
                        k: None if v is None else {"mean": v[0], "std": _none(v[1])}
                        for k, v in stats.items()
                    },
                }
            )
        return out


def _none(x: float) -> float | None:
    return None if not np.isfinite(x) else x
