"""The training files of a run dir: config.json, model.safetensors, train_state.pt, history.csv
(their names belong to oodbench.runs, the weights format and loading a trained run to
oodbench.models.weights).

Weights are read only from safetensors. ``train_state.pt`` is read only with
``torch.load(weights_only=True)``, so a crafted pickle cannot run code. It is the single commit
point of a resume: it embeds the same safetensors bytes as ``model.safetensors`` plus the
optimizer, scheduler and RNG states, so a kill between two file writes can never pair the
weights of one epoch with the optimizer of another.
"""

from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from oodbench import losses
from oodbench.config import TrainConfig, check_run_name, resolve_in
from oodbench.errors import UserError
from oodbench.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from oodbench.runs import CONFIG, HISTORY, STATE, WEIGHTS

HISTORY_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "test_acc",
    "val_acc",  # the ID validation split's (empty with --val-size 0; absent before 0.3)
    "train_logit_norm",
    "test_logit_norm",
    "images_per_s",
    "seconds",
)


def save_weights(run_dir: Path, data: bytes) -> None:
    atomic_write_bytes(run_dir / WEIGHTS, data)


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(run_dir / STATE, buffer.getvalue())


def load_state(run_dir: Path) -> dict[str, Any] | None:
    """train_state.pt through the weights-only unpickler; None if there is none yet."""
    path = run_dir / STATE
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"refusing {path}: it is not a plain weights-only training state ({first}); "
            "it may be corrupt or crafted to run code; delete it and restart with --overwrite"
        ) from exc
    if not isinstance(state, dict) or "epoch" not in state or "weights" not in state:
        raise UserError(f"{path} is not an oodbench training state; restart with --overwrite")
    return state


def write_history(run_dir: Path, rows: list[dict[str, float]]) -> None:
    frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    atomic_write_text(run_dir / HISTORY, frame.to_csv(index=False, float_format="%.6g"))


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    atomic_write_json(run_dir / CONFIG, config)


# Fields that may change on --resume; every other field must match the saved config.
RESUMABLE_CHANGES = ("epochs", "device", "compile", "root", "download")


def prepare_run_dir(
    runs_dir: Path, name: str | None, cfg: TrainConfig, resume: bool, overwrite: bool
) -> Path:
    """Pick and check ``runs_dir / name``: refuse to clobber a run, or to resume nothing."""
    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other; pass one of them")
    base = check_run_name(name or losses.default_name(cfg))
    run_dir = resolve_in(runs_dir, base)
    if name is None and not resume and not overwrite:
        i = 2
        while run_dir.exists():  # a derived name gets a numeric suffix instead of clobbering
            run_dir, i = resolve_in(runs_dir, f"{base}-{i}"), i + 1
    if resume and not run_dir.is_dir():
        raise UserError(f"no run {run_dir} to resume; drop --resume to start it")
    if run_dir.exists() and not resume:
        if not overwrite:
            raise UserError(
                f"run dir {run_dir} exists; pass --resume to continue it, --overwrite to replace "
                "it, or another --name"
            )
        looks_like_run = not any(run_dir.iterdir()) or (run_dir / CONFIG).is_file()
        if not run_dir.is_dir() or not looks_like_run:
            raise UserError(f"--overwrite refused: {run_dir} is not an oodbench run dir")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def check_resume_config(saved: dict[str, Any], cfg: TrainConfig) -> None:
    """A resumed run must be the same experiment; only RESUMABLE_CHANGES may differ."""
    old = losses.configure(TrainConfig.from_json(saved)).to_json()
    for key, value in cfg.to_json().items():
        if key not in RESUMABLE_CHANGES and old[key] != value:
            raise UserError(
                f"cannot resume: the run was trained with {key}={old[key]!r}, not {value!r}; "
                "drop that option or start a new run"
            )


def clean_temp_files(run_dir: Path) -> None:
    """Remove temp files a kill -9 left mid-write (atomic writes never renamed them)."""
    for tmp in run_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
