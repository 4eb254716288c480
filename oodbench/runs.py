"""The run directory: every file name in it, their readers and writers, the metrics.csv schema.

```
runs/<name>/
  config.json         the TrainConfig plus architecture, normalisation and validation indices
  model.safetensors   weights of the last finished epoch
  train_state.pt      the resume point (read with weights_only=True)
  history.csv         one row per epoch
  cache/<set>-<split>.safetensors       logits and features of one forward pass
  scores/<detector>/<set>.safetensors   one detector's scores on one set
  metrics.csv         one row per (detector, OOD set, protocol, convention)
  summary.json        ID accuracy, ECE, temperature
  failure.csv shift.csv fsood.csv   the overconfidence track (oodbench.scoring.rowfiles)
```

A bench folder (``oodbench bench --out``) holds run dirs plus ``report.md``, ``plots/`` and
``tau_sweep.csv``. No other module spells these names: they ask a ``RunDir``. Every write is
atomic (oodbench.io); metrics.csv is merged under a file lock. Run dirs of 0.1.0 read as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oodbench.config import TrainConfig
from oodbench.errors import UserError
from oodbench.io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_write_with,
    file_lock,
)

CONFIG, WEIGHTS, STATE = "config.json", "model.safetensors", "train_state.pt"
HISTORY, METRICS, SUMMARY = "history.csv", "metrics.csv", "summary.json"
FAILURE, SHIFT, FSOOD = "failure.csv", "shift.csv", "fsood.csv"  # scoring.rowfiles' tables
CACHE, SCORES = "cache", "scores"
SCORES_TENSOR = "scores"  # the one tensor in a scores/ file
REPORT, PLOTS, TAU_SWEEP, JOBS = "report.md", "plots", "tau_sweep.csv", ".jobs"  # bench folder
ACROSS = "settings.csv"  # a bench over several settings: the summary across them

# ---------------------------------------------------------------- the metrics.csv schema

KEY = ["detector", "ood_dataset", "protocol", "convention"]  # one row per key: the resume unit
VALUES = ["fpr95", "auroc", "aupr_in", "aupr_out"]
COLUMNS = [
    "run", "seed", "loss", "tau", "model", "id_dataset", *KEY,
    *VALUES, *(f"{v}_std" for v in VALUES), "n_id", "n_ood", "weights_hash", "params",
    *(f"{v}_{end}" for v in VALUES for end in ("lo", "hi")), "n_boot", "head",
]  # fmt: skip
# 95% bootstrap interval of each value (percent; metrics.bootstrap_intervals) and the number of
# resamples behind it; rows of older files have none and read as NaN.
INTERVALS = [f"{v}_{end}" for v in VALUES for end in ("lo", "hi")]
REQUIRED = [*KEY, "fpr95", "auroc"]  # a file without these cannot be scored onto or reported
# Columns that older files may lack, and what they read as. weights_hash "" is never current,
# so rows that recorded no weights are stale (see drop_stale).
OPTIONAL = {"weights_hash": "", "aupr_in": float("nan"), "aupr_out": float("nan"), "params": ""}
OPTIONAL |= {c: float("nan") for c in [*INTERVALS, "n_boot"]}
# The head detectors read (scoring.inputs.load_network): rows before 0.3 all read the trained one.
OPTIONAL["head"] = "raw"
# How deep under a folder a scored run may sit: runs/x, runs/bench/ce, runs/bench/seed0/ce.
MAX_DEPTH = 3


class RunDir:
    """One run directory: the paths of its files and their readers and writers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS

    @property
    def state(self) -> Path:
        return self.path / STATE

    @property
    def history(self) -> Path:
        return self.path / HISTORY

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    def table(self, name: str) -> Path:
        """One of oodbench.scoring.rowfiles' CSVs (failure.csv, shift.csv, fsood.csv)."""
        return self.path / name

    @property
    def cache(self) -> Path:
        return self.path / CACHE

    @property
    def scores(self) -> Path:
        return self.path / SCORES

    def cache_file(self, key: str) -> Path:
        return cache_file(self.cache, key)

    def val_cache_files(self) -> list[Path]:
        return sorted(self.cache.glob("*-val.safetensors"))

    def scores_file(self, detector: str, dataset: str) -> Path:
        return self.scores / detector / f"{file_key(dataset)}.safetensors"

    @property
    def is_trained(self) -> bool:
        return self.weights.is_file() and self.config.is_file()

    @property
    def is_scored(self) -> bool:
        return self.metrics.is_file()

    # ------------------------------------------------------------ json files

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.config, config)

    def read_config(self) -> dict[str, Any]:
        """config.json as written, checked to read as a TrainConfig; a missing file is an
        error."""
        if not self.config.is_file():
            raise UserError(
                f"{self.path} is not a run dir (no {CONFIG}); check the path or train first"
            )
        try:
            data = json.loads(self.config.read_text())
            TrainConfig.from_json(data)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as exc:
            raise UserError(f"{self.config} is corrupt ({exc}); retrain the run") from exc
        return data

    def config_values(self) -> dict[str, Any]:
        """config.json for reading back (report, bench): {} when absent."""
        return _read_json(self.config)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary, summary)

    def read_summary(self) -> dict[str, Any]:
        """summary.json ({} when the run is not scored yet)."""
        return _read_json(self.summary)

    # ------------------------------------------------------------ training files

    def write_weights(self, data: bytes) -> None:
        atomic_write_bytes(self.weights, data)

    def write_state(self, data: bytes) -> None:
        atomic_write_bytes(self.state, data)

    def write_history(self, frame: pd.DataFrame) -> None:
        atomic_write_text(self.history, frame.to_csv(index=False, float_format="%.6g"))

    def read_history(self) -> pd.DataFrame | None:
        """history.csv, or None when absent or unreadable (it only feeds plots and resumes)."""
        if not self.history.is_file():
            return None
        try:
            return pd.read_csv(self.history)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
            return None

    def epochs_done(self) -> int:
        history = self.read_history()
        return 0 if history is None else len(history)

    # ------------------------------------------------------------ scores/

    def save_scores(self, detector: str, dataset: str, scores: Any, meta: dict[str, str]) -> None:
        """One detector's scores (a torch tensor, higher = more ID) with the inputs they are
        for (``meta``: weights, data and detector)."""
        from safetensors.torch import save_file

        tensors = {SCORES_TENSOR: scores.contiguous()}
        path = self.scores_file(detector, dataset)
        atomic_write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))

    def load_scores(self, detector: str, dataset: str, expected: dict[str, str]) -> Any:
        """Saved scores (a torch tensor) if the file is intact and its metadata is ``expected``,
        else None: the caller recomputes and overwrites them."""
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        path = self.scores_file(detector, dataset)
        try:
            if path.is_file():
                with safe_open(str(path), framework="pt") as fh:
                    meta = dict(fh.metadata() or {})
                if meta == expected:
                    return load_file(str(path))[SCORES_TENSOR]
        except (SafetensorError, OSError, KeyError, ValueError, RuntimeError):
            pass  # damaged: recompute and overwrite it
        return None

    def read_scores(self, detector: str, dataset: str) -> np.ndarray | None:
        """Saved scores as float64 for the report (None when absent); a damaged file is a
        clear error."""
        path = self.scores_file(detector, dataset)
        if not path.is_file():
            return None
        return np.asarray(read_arrays(path)[SCORES_TENSOR], dtype=np.float64)

    # ------------------------------------------------------------ metrics.csv

    def read_metrics(self) -> pd.DataFrame:
        return read_metrics(self.metrics)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """A safetensors file's arrays (numpy); a damaged file is a clear error, not a traceback."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(
            f"{path} is corrupt or truncated ({exc}); delete it and re-run 'oodbench score'"
        ) from exc


def cache_file(cache_dir: Path, key: str) -> Path:
    """``cache/<key>.safetensors``, key = ``<dataset>-<split>``."""
    return cache_dir / f"{file_key(key)}.safetensors"


def cache_lock(cache_dir: Path, key: str) -> Path:
    """The hidden lock beside a cache file (``file_lock`` adds ``.lock``)."""
    return cache_dir / f".{file_key(key)}"


def file_key(key: str) -> str:
    """``key`` as one safe file-name component. Names such as ``folder:/data/x-test`` become
    ``<hash>-folder_data_x-test``: the hash keeps two paths apart, the tail keeps ``-test``."""
    if re.fullmatch(r"[A-Za-z0-9._=+\-\[\],]+", key) and not key.startswith("."):
        return key
    import hashlib

    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{digest}-{re.sub(r'[^A-Za-z0-9._=+-]+', '_', key).strip('_.')}"


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}; is it a run written by oodbench?") from exc
    return data if isinstance(data, dict) else {}


def read_metrics(path: Path) -> pd.DataFrame:
    """The one metrics.csv reader (scoring and report): empty when absent; a damaged file or one
    without the REQUIRED columns is a clear error; OPTIONAL columns an older file lacks are
    filled in."""
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    try:
        table = pd.read_csv(path, dtype={"weights_hash": str, "params": str})  # text, never numbers
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{path} is not a readable CSV ({exc}); move it away and re-run 'oodbench score'"
        ) from exc
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise UserError(
            f"{path} lacks columns {', '.join(missing)}; move it away and re-run 'oodbench score'"
        )
    for column, default in OPTIONAL.items():
        if column not in table.columns:
            table[column] = default
    return table


def _write_metrics(path: Path, table: pd.DataFrame) -> None:
    atomic_write_text(path, table.reindex(columns=COLUMNS).to_csv(index=False))


def _lock(path: Path) -> Path:
    return path.parent / f".{path.name}"


def merge_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Read-merge-write under the file lock: rows with the same KEY are replaced."""
    new = pd.DataFrame(rows, columns=COLUMNS)
    with file_lock(_lock(path)):
        old = read_metrics(path)
        keep = ~old.set_index(KEY).index.isin(new.set_index(KEY).index)
        parts = [t for t in (old[keep], new) if len(t)]
        _write_metrics(path, pd.concat(parts, ignore_index=True).sort_values(KEY, kind="stable"))


def _current(table: pd.DataFrame, weights_hash: str) -> pd.Series:
    return table["weights_hash"].fillna("").astype(str) == weights_hash


def drop_stale(path: Path, weights_hash: str) -> int:
    """Remove the rows scored with other weights (the run was retrained or extended in place);
    return how many. Rows that recorded no weights (older files) cannot be trusted either."""
    if not path.is_file():
        return 0
    with file_lock(_lock(path)):
        table = read_metrics(path)
        stale = ~_current(table, weights_hash)
        if stale.any():
            _write_metrics(path, table.loc[~stale])
        return int(stale.sum())


def drop_changed_params(path: Path, params: dict[str, str]) -> int:
    """Remove the rows of the detectors in ``params`` (label -> ``k=50``-style values) that
    were scored with other values, e.g. under an older default; return how many. An empty cell
    is a row from 0.1.0, which wrote no params: it ran 0.1.0's defaults, today's, so it stays
    (a release that changes a default must drop those rows of that detector)."""
    if not path.is_file():
        return 0
    with file_lock(_lock(path)):
        table = read_metrics(path)
        recorded = table["params"].fillna("").astype(str)
        expected = table["detector"].map(params)
        changed = expected.notna() & (recorded != "") & (recorded != expected)
        if changed.any():
            _write_metrics(path, table.loc[~changed])
        return int(changed.sum())


def done_keys(path: Path, weights_hash: str | None = None) -> set[tuple[str, ...]]:
    """KEYs of the rows already in metrics.csv (only those scored with ``weights_hash``)."""
    table = read_metrics(path)
    if weights_hash is not None:
        table = table[_current(table, weights_hash)]
    return {tuple(str(v) for v in row) for row in table[KEY].itertuples(index=False)}


def ood_means(
    table: pd.DataFrame,
    protocol: str = "paper",
    convention: str = "id-positive",
    *,
    values: Iterable[str] = ("fpr95", "auroc"),
    by: Iterable[str] = ("detector",),
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    sort: bool = True,
) -> pd.DataFrame:
    """The mean over OOD sets per detector (or per ``by``) of the metrics rows scored under
    ``protocol`` and ``convention``, over the OOD sets in ``only`` (default: all) but not in
    ``exclude``.

    The one summary behind the bench headline, the tau sweep, the report's Average rows and
    scripts/summarize_seeds.py."""
    rows = table[
        (table["protocol"] == protocol)
        & (table["convention"] == convention)
        & ~table["ood_dataset"].isin(list(exclude))
    ]
    if only is not None:
        rows = rows[rows["ood_dataset"].isin(list(only))]
    return rows.groupby(list(by), sort=sort)[list(values)].mean()


# ---------------------------------------------------------------- finding runs


def newest_trained(runs_dir: Path) -> RunDir | None:
    """The most recently trained run directly under ``runs_dir``."""
    found = sorted(runs_dir.glob(f"*/{WEIGHTS}"), key=lambda p: p.stat().st_mtime)
    return RunDir(found[-1].parent) if found else None


def scored_runs(folder: Path) -> list[Path]:
    """Every scored run (a folder with metrics.csv) up to MAX_DEPTH levels under ``folder``."""
    found: list[Path] = []
    for depth in range(1, MAX_DEPTH + 1):
        found += [p.parent for p in folder.glob("/".join(["*"] * depth) + "/" + METRICS)]
    return sorted(set(found))


def bench_files(out: str | Path) -> tuple[Path, Path, Path]:
    """A bench folder's report.md, plots/ and tau_sweep.csv."""
    out = Path(out)
    return out / REPORT, out / PLOTS, out / TAU_SWEEP
