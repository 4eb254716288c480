"""Read scored run directories into tidy pandas frames.

The report reads only what a run dir holds (config.json, summary.json, metrics.csv,
history.csv, scores/, cache/; their names and readers are oodbench.runs'), so runs can be moved,
shared and merged before reporting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oodbench import losses
from oodbench.config import loss_params_of
from oodbench.errors import UserError
from oodbench.runs import METRICS, RunDir, read_arrays, read_metrics, scored_runs


@dataclass(frozen=True)
class Run:
    """One scored run directory and the settings that decide how it is grouped."""

    path: Path
    name: str
    loss: str
    tau: float | None
    loss_params: dict[str, Any] = field(compare=False)  # the label holds them
    model: str
    id_dataset: str
    seed: int | None
    summary: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        """``CE``, ``LogitNorm τ=0.04``: what a reader recognises from the paper."""
        return losses.label(self.loss, self.loss_params)  # spelled by the loss registry

    @property
    def group_key(self) -> tuple[str, str, str, str]:
        """Runs that differ only in seed share this key and become one column."""
        return (self.label, self.model, self.id_dataset, self.loss)


def discover(runs_dir: Path) -> list[Path]:
    """Every scored run (a folder with metrics.csv) up to MAX_DEPTH levels under runs_dir."""
    if not runs_dir.is_dir():
        raise UserError(f"runs folder {runs_dir} does not exist; pass RUN_DIR or --runs-dir")
    return scored_runs(runs_dir)


def expand(run_dirs: list[Path], runs_dir: Path) -> list[Path]:
    """Resolve the RUN_DIR arguments: a run dir stays, a folder of runs expands to its runs."""
    if not run_dirs:
        found = discover(runs_dir)
        if not found:
            raise UserError(
                f"no scored runs (folders with {METRICS}) under {runs_dir}; "
                "run 'oodbench score' first or pass RUN_DIR"
            )
        return found
    out: list[Path] = []
    for path in run_dirs:
        if RunDir(path).is_scored:
            out.append(path)
        elif path.is_dir() and (inner := discover(path)):
            out += inner
        elif path.is_dir():
            raise UserError(f"{path} has no {METRICS}; score it first with 'oodbench score {path}'")
        else:
            raise UserError(f"run dir {path} does not exist")
    return list(dict.fromkeys(out))


def _first(key: str, *sources: dict[str, Any]) -> Any:
    for src in sources:
        value = src.get(key)
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            return value
    return None


def load_run(path: Path) -> tuple[Run, pd.DataFrame]:
    """One run dir -> (Run, its metrics rows with run identity columns filled in)."""
    run_dir = RunDir(path)
    metrics = read_metrics(run_dir.metrics)
    config = run_dir.config_values()
    summary = run_dir.read_summary()
    row0 = metrics.iloc[0].to_dict() if len(metrics) else {}
    loss = str(_first("loss", config, summary, row0) or "unknown")
    tau = _first("tau", loss_params_of(config), summary, row0)
    seed = _first("seed", config, summary, row0)
    run = Run(
        path=path,
        name=path.name,
        loss=loss,
        tau=float(tau) if tau is not None else None,
        loss_params=loss_params_of(config),
        model=str(_first("model", config, summary, row0) or "unknown"),
        id_dataset=str(_first("dataset", config) or _first("id_dataset", summary, row0) or "?"),
        seed=int(seed) if seed is not None else None,
        summary=summary,
    )
    metrics = metrics.assign(
        run=str(path), label=run.label, model=run.model, id_dataset=run.id_dataset, seed=run.seed
    )
    return run, metrics


def load_runs(paths: list[Path]) -> tuple[list[Run], pd.DataFrame]:
    runs, frames = [], []
    for path in paths:
        run, frame = load_run(path)
        runs.append(run)
        frames.append(frame)
    return runs, pd.concat(frames, ignore_index=True)


def read_history(run: Run) -> pd.DataFrame | None:
    return RunDir(run.path).read_history()


def read_scores(run: Run, detector: str, dataset: str) -> np.ndarray | None:
    """scores/<detector>/<dataset>.safetensors (higher = more ID), None when absent."""
    return RunDir(run.path).read_scores(detector, dataset)


def read_test_logits(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached ID test logits and labels, for the reliability diagram."""
    path = RunDir(run.path).cache_file(f"{run.id_dataset}-test")
    if not path.is_file():
        return None
    arrays = read_arrays(path)
    return arrays["logits"].astype(np.float64), arrays["labels"].astype(np.int64)
