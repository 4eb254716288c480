"""The training files of a run dir: config.json, model.safetensors, train_state.pt, history.csv
(their names belong to oodbench.runs).

Weights are read only from safetensors. ``train_state.pt`` is read only with
``torch.load(weights_only=True)``, so a crafted pickle cannot run code. It is the single commit
point of a resume: it embeds the same safetensors bytes as ``model.safetensors`` plus the
optimizer, scheduler and RNG states, so a kill between two file writes can never pair the
weights of one epoch with the optimizer of another.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import safetensors.torch
import torch
from safetensors import SafetensorError

from oodbench.config import TrainConfig, check_run_name, resolve_in
from oodbench.errors import UserError
from oodbench.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from oodbench.models import create_model
from oodbench.runs import CONFIG, HISTORY, STATE, WEIGHTS
from oodbench.train import losses

HISTORY_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "test_acc",
    "train_logit_norm",
    "test_logit_norm",
    "images_per_s",
    "seconds",
)


@dataclass(frozen=True)
class Arch:
    """What a weights file fits: saved in config.json and the safetensors metadata."""

    model: str
    num_classes: int
    in_chans: int
    img_size: list[int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def create(self) -> torch.nn.Module:
        return create_model(self.model, self.num_classes, self.in_chans, self.img_size)

    def describe(self) -> str:
        return f"{self.model} with {self.num_classes} classes ({self.in_chans} channels)"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def weights_bytes(model: torch.nn.Module, tags: dict[str, Any]) -> bytes:
    """safetensors bytes of the model, tagged with its architecture (``Arch.to_json()``)."""
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    meta = {k: json.dumps(v) for k, v in tags.items()}
    return safetensors.torch.save(state, metadata=meta)


def save_weights(run_dir: Path, data: bytes) -> None:
    atomic_write_bytes(run_dir / WEIGHTS, data)


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and architecture metadata from a safetensors file (never a pickle)."""
    if not path.is_file():
        raise UserError(f"{path} is missing; train the run first or pass the right run dir")
    return weights_from_bytes(path.read_bytes(), str(path))


def weights_from_bytes(data: bytes, where: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        tensors = safetensors.torch.load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError, OSError, json.JSONDecodeError) as exc:
        raise UserError(
            f"{where} is truncated or not a safetensors file ({exc}); retrain it"
        ) from exc
    meta = {k: json.loads(v) for k, v in header.get("__metadata__", {}).items()}
    return tensors, meta


def check_architecture(meta: dict[str, Any], arch: Arch, where: str) -> None:
    """Refuse weights whose recorded model or class count differs from config.json."""
    for key in ("model", "num_classes", "in_chans"):
        if key in meta and meta[key] != getattr(arch, key):
            raise UserError(
                f"{where} holds {meta.get('model')} with {meta.get('num_classes')} classes "
                f"({meta.get('in_chans')} channels) but {CONFIG} says {arch.describe()}; "
                f"use the matching {CONFIG} or retrain"
            )


def load_weights_into(
    model: torch.nn.Module, tensors: dict[str, torch.Tensor], arch: Arch, where: str
) -> None:
    own = unwrap(model).state_dict()
    bad = sorted(set(own) ^ set(tensors)) + sorted(
        k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape
    )
    if bad:
        raise UserError(
            f"{where} does not fit {arch.model} with {arch.num_classes} classes from "
            f"{CONFIG} (first mismatch: {bad[0]}); use the matching {CONFIG} or retrain"
        )
    unwrap(model).load_state_dict(tensors)


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


def read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run dir (no {CONFIG}); check the path or train first")
    try:
        data = json.loads(path.read_text())
        TrainConfig.from_json(data)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is corrupt ({exc}); retrain the run") from exc
    return data


def arch_of(config: dict[str, Any]) -> Arch:
    return Arch(config["model"], config["num_classes"], config["in_chans"],
                list(config["img_size"]))  # fmt: skip


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_run(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, TrainConfig, dict[str, Any]]:
    """The trained model (eval mode), its TrainConfig and facts about its data.

    ``info`` has num_classes, in_chans, img_size, mean, std, val_indices, epochs_done and
    weights_sha256 (a stable hash of model.safetensors, for caches).
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    cfg = TrainConfig.from_json(config)
    arch = arch_of(config)
    path = run_dir / WEIGHTS
    if not path.is_file():
        raise UserError(f"{path} is missing; finish training first (oodbench train --resume)")
    data = path.read_bytes()
    tensors, meta = weights_from_bytes(data, str(path))
    check_architecture(meta, arch, str(path))
    model = arch.create()
    load_weights_into(model, tensors, arch, str(path))
    info = {k: config[k] for k in ("num_classes", "in_chans", "img_size", "mean", "std")}
    info["val_indices"] = config.get("val_indices", [])
    info["epochs_done"] = meta.get("epoch")
    info["weights_sha256"] = sha256(data)
    return model.to(device).eval(), cfg, info


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
