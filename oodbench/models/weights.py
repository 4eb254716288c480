"""A model's weights file (safetensors tagged with the architecture it fits, ``Arch``) and
loading a trained run's model from its run dir.

Weights are read only from safetensors, never from a pickle. Training writes these files,
``oodbench import`` converts foreign checkpoints into them and ``load_run`` reads them back for
scoring, so the three agree on one format without scoring importing the training stage.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from oodbench.config import TrainConfig
from oodbench.errors import UserError
from oodbench.models import create_model
from oodbench.runs import CONFIG, RunDir


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


def arch_of(config: dict[str, Any]) -> Arch:
    """The architecture a run's config records."""
    return Arch(config["model"], config["num_classes"], config["in_chans"],
                list(config["img_size"]))  # fmt: skip


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def weights_bytes(model: torch.nn.Module, tags: dict[str, Any]) -> bytes:
    """safetensors bytes of the model, tagged with its architecture (``Arch.to_json()``)."""
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    meta = {k: json.dumps(v) for k, v in tags.items()}
    return safetensors.torch.save(state, metadata=meta)


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


def check_architecture(meta: dict[str, Any], arch: Arch, where: str, config: str) -> None:
    """Refuse weights whose recorded model or class count differs from the run's ``config``
    (the file that names ``arch``)."""
    for key in ("model", "num_classes", "in_chans"):
        if key in meta and meta[key] != getattr(arch, key):
            raise UserError(
                f"{where} holds {meta.get('model')} with {meta.get('num_classes')} classes "
                f"({meta.get('in_chans')} channels) but {config} says {arch.describe()}; "
                f"use the matching {config} or retrain"
            )


def load_weights_into(
    model: torch.nn.Module, tensors: dict[str, torch.Tensor], arch: Arch, where: str, config: str
) -> None:
    own = unwrap(model).state_dict()
    bad = sorted(set(own) ^ set(tensors)) + sorted(
        k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape
    )
    if bad:
        raise UserError(
            f"{where} does not fit {arch.model} with {arch.num_classes} classes from "
            f"{config} (first mismatch: {bad[0]}); use the matching {config} or retrain"
        )
    unwrap(model).load_state_dict(tensors)


def load_run(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, TrainConfig, dict[str, Any]]:
    """A run dir's trained model (eval mode), its TrainConfig and facts about its data.

    ``info`` has num_classes, in_chans, img_size, mean, std, val_indices, epochs_done and
    weights_sha256 (a stable hash of model.safetensors, for caches).
    """
    run = RunDir(run_dir)
    config = run.read_config()
    arch, where = arch_of(config), str(run.weights)
    if not run.weights.is_file():
        raise UserError(f"{where} is missing; finish training first (oodbench train --resume)")
    data = run.weights.read_bytes()
    tensors, meta = weights_from_bytes(data, where)
    check_architecture(meta, arch, where, CONFIG)
    model = arch.create()
    load_weights_into(model, tensors, arch, where, CONFIG)
    info = {k: config[k] for k in ("num_classes", "in_chans", "img_size", "mean", "std")}
    info["val_indices"] = config.get("val_indices", [])
    info["epochs_done"] = meta.get("epoch")
    info["weights_sha256"] = hashlib.sha256(data).hexdigest()
    return model.to(device).eval(), TrainConfig.from_json(config), info
