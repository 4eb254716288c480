"""Read scored run directories into tidy pandas frames.

The report reads only what a run dir holds (config.json, summary.json, metrics.csv,
history.csv, scores/, cache/), so runs can be moved, shared and merged before reporting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load_file

from oodbench.config import loss_params_of
from oodbench.errors import UserError
from oodbench.train import losses

METRICS = "metrics.csv"
# How deep under --runs-dir a scored run may sit: runs/x, runs/bench/ce, runs/bench/seed0/ce.
MAX_DEPTH = 3
REQUIRED_COLUMNS = ("detector", "ood_dataset", "protocol", "convention", "fpr95", "auroc")


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
    found: list[Path] = []
    for depth in range(1, MAX_DEPTH + 1):
        pattern = "/".join(["*"] * depth) + "/" + METRICS
        found += [p.parent for p in runs_dir.glob(pattern)]
    return sorted(set(found))


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
        if (path / METRICS).is_file():
            out.append(path)
        elif path.is_dir() and (inner := discover(path)):
            out += inner
        elif path.is_dir():
            raise UserError(f"{path} has no {METRICS}; score it first with 'oodbench score {path}'")
        else:
            raise UserError(f"run dir {path} does not exist")
    return list(dict.fromkeys(out))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}; is it a run written by oodbench?") from exc
    return data if isinstance(data, dict) else {}


def _config_values(config: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig fields at top level, or nested under "train" (read defensively)."""
    nested = config.get("train")
    return {**config, **nested} if isinstance(nested, dict) else config


def _first(key: str, *sources: dict[str, Any]) -> Any:
    for src in sources:
        value = src.get(key)
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            return value
    return None


def load_run(path: Path) -> tuple[Run, pd.DataFrame]:
    """One run dir -> (Run, its metrics rows with run identity columns filled in)."""
    metrics = read_metrics(path / METRICS)
    config = _config_values(_read_json(path / "config.json"))
    summary = _read_json(path / "summary.json")
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


def read_metrics(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}; re-run 'oodbench score'") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{path} lacks columns {', '.join(missing)}; re-run 'oodbench score'")
    if "aupr_in" not in frame.columns:
        frame["aupr_in"] = np.nan
    if "aupr_out" not in frame.columns:
        frame["aupr_out"] = np.nan
    return frame


def load_runs(paths: list[Path]) -> tuple[list[Run], pd.DataFrame]:
    runs, frames = [], []
    for path in paths:
        run, frame = load_run(path)
        runs.append(run)
        frames.append(frame)
    return runs, pd.concat(frames, ignore_index=True)


def read_history(run: Run) -> pd.DataFrame | None:
    path = run.path / "history.csv"
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None


def read_scores(run: Run, detector: str, dataset: str) -> np.ndarray | None:
    """scores/<detector>/<dataset>.safetensors tensor "scores" (higher = more ID)."""
    path = run.path / "scores" / detector / f"{dataset}.safetensors"
    if not path.is_file():
        return None
    return np.asarray(_arrays(path)["scores"], dtype=np.float64)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """A safetensors file's arrays; a damaged file is a clear error, not a traceback."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(
            f"{path} is corrupt or truncated ({exc}); delete it and re-run 'oodbench score'"
        ) from exc


def read_test_logits(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached ID test logits and labels, for the reliability diagram."""
    path = run.path / "cache" / f"{run.id_dataset}-test.safetensors"
    if not path.is_file():
        return None
    arrays = _arrays(path)
    return arrays["logits"].astype(np.float64), arrays["labels"].astype(np.int64)
