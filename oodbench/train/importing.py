"""``oodbench import``: a run dir from a checkpoint trained elsewhere.

The weights are read without running code: safetensors, or a PyTorch file through
``torch.load(weights_only=True)`` (a plain state dict, or one under ``state_dict`` / ``model`` /
``model_state_dict`` / ``state_dict_ema``). Prefixes that wrappers add (``module.`` from DDP,
``model.`` from Lightning, ``_orig_mod.`` from torch.compile) are removed when every key has
them and the model's own keys do not. A checkpoint that does not fit the architecture is
refused with its missing, unexpected and mis-shaped keys named.

Input geometry and normalisation: for timm architectures, timm's ``resolve_data_config`` (input
size, interpolation, crop_pct, mean, std), recorded in config.json so that image folders are
decoded the way the model expects; for our CIFAR-style nets, the ID set's own geometry and
statistics, as ``oodbench train`` does. OpenOOD's CIFAR ResNet-18 checkpoints load into
``resnet18_32x32`` with OpenOOD's normalisation (train/openood.py). The run dir records
``imported`` (source file, its SHA-256, the prefixes removed) and is then scored and reported
like a trained run.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from oodbench.config import TrainConfig, check_run_name, resolve_in
from oodbench.data.imageset import ImageSet
from oodbench.data.split import validation_split
from oodbench.errors import UserError
from oodbench.models import OUR_MODELS, check_model_name
from oodbench.models.weights import Arch, weights_bytes
from oodbench.provenance import DATASETS, PROVENANCE, collect, data_key
from oodbench.runs import RunDir
from oodbench.train import openood as openood_keys
from oodbench.train.checkpoint import save_weights

PREFIXES = ("module.", "model.", "_orig_mod.")
NESTED = ("state_dict", "model", "model_state_dict", "state_dict_ema", "net")
SHOWN = 5  # keys named in a mismatch message, per kind


@dataclass(frozen=True)
class ImportRequest:
    weights: Path
    model: str
    dataset: str
    name: str | None = None
    runs_dir: Path = Path("runs")
    loss: str = "imported"
    root: str | None = None
    overwrite: bool = False


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors or weights-only PyTorch file; anything else is refused."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(str(path))
        except Exception as exc:  # safetensors raises several types for a damaged header
            raise UserError(f"{path} is not a readable safetensors file ({_first(exc)})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise UserError(
            f"refusing {path}: not a weights-only PyTorch checkpoint ({_first(exc)}); save it "
            "with torch.save(model.state_dict(), ...) or as safetensors"
        ) from None
    for key in NESTED:
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)} if isinstance(
        state, Mapping) else {}  # fmt: skip
    if not tensors:
        raise UserError(f"{path} holds no state dict (no name -> tensor mapping)")
    return tensors


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def strip_prefixes(
    tensors: dict[str, torch.Tensor], own: set[str]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Remove wrapper prefixes that every key has and the model's keys do not."""
    removed = []
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if tensors and all(k.startswith(prefix) for k in tensors) and not (set(tensors) & own):
                tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
                removed.append(prefix)
                changed = True
    return tensors, removed


def check_fit(tensors: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor],
              where: str, arch: Arch) -> None:  # fmt: skip
    """One line naming the missing, unexpected and mis-shaped keys, when there are any."""
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [
        f"{k} ({'x'.join(map(str, tensors[k].shape))} in the file, "
        f"{'x'.join(map(str, own[k].shape))} in the model)"
        for k in sorted(set(own) & set(tensors))
        if tensors[k].shape != own[k].shape
    ]
    if not (missing or unexpected or shapes):
        return
    parts = [
        f"{label}: {_some(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatch", shapes),
        )  # fmt: skip
        if keys
    ]
    raise UserError(f"{where} does not fit {arch.describe()}: {'; '.join(parts)}")


def _some(keys: list[str]) -> str:
    more = f" (+{len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def in_chans_of(tensors: Mapping[str, torch.Tensor], default: int) -> int:
    """Input channels: those of the first 4-D (convolution or patch-embedding) weight."""
    for value in tensors.values():
        if value.ndim == 4:
            return int(value.shape[1])
    return default


def data_config(model_name: str, model: torch.nn.Module) -> dict[str, Any] | None:
    """timm's preprocessing of the model (None for our CIFAR nets: they use the data's own)."""
    if model_name in OUR_MODELS:
        return None
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    keep = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items() if k in keep}


def import_checkpoint(req: ImportRequest) -> Path:
    """Write ``runs_dir/name`` from the checkpoint; return its path. All or nothing: the run
    dir is assembled in a hidden temporary folder and renamed into place."""
    from oodbench import data

    check_model_name(req.model)
    dataset = _canonical(req.dataset)
    spec = data.DATASETS.get(dataset)
    if spec.num_classes < 2 or "train" not in spec.splits:
        raise UserError(f"--dataset {req.dataset} has no classes to classify; pass the ID set")
    name = check_run_name(req.name or f"{Path(req.weights).stem}-imported")
    target = resolve_in(req.runs_dir, name)
    if target.exists() and not req.overwrite:
        raise UserError(f"run dir {target} exists; pass --overwrite or another --name")
    tensors = read_state_dict(Path(req.weights))
    native: list[int] | None = None  # our nets take the data's own geometry
    chans = 3
    if req.model in OUR_MODELS:
        sample = data.load(dataset, "test", root=req.root)
        native, chans = list(sample.size), sample.channels
    in_chans = in_chans_of(tensors, chans)
    probe = Arch(req.model, spec.num_classes, in_chans, native).create()  # type: ignore[arg-type]
    prep = data_config(req.model, probe)
    img_size = list(prep["input_size"][1:]) if prep else list(native or [])
    arch = Arch(req.model, spec.num_classes, in_chans, img_size)
    model = arch.create() if prep else probe
    own = model.state_dict()
    tensors, removed = strip_prefixes(tensors, set(own))
    openood: dict[str, Any] = {}
    if req.model in openood_keys.OPENOOD_MODELS:
        tensors, openood = openood_keys.from_openood(tensors)
    check_fit(tensors, own, str(req.weights), arch)
    model.load_state_dict(tensors)
    geometry = (in_chans, *img_size)
    train_set = data.load(dataset, "train", root=req.root, geometry=geometry if prep else None,
                          preprocess=prep)  # fmt: skip
    if train_set.channels != in_chans:
        raise UserError(
            f"{req.weights} takes {in_chans}-channel images but {dataset} has "
            f"{train_set.channels}; pass a matching --dataset or checkpoint"
        )
    extra = _extra(req.weights, removed, prep)
    if openood:
        extra["imported"]["openood"] = openood
    cfg = TrainConfig(dataset=dataset, model=req.model, loss=req.loss, epochs=1,
                      val_size=min(5000, len(train_set) // 10), root=req.root,
                      extra=extra)  # fmt: skip
    _, val_idx = validation_split(cfg, train_set)
    mean, std = prep_stats(req.model, dataset, prep, train_set)
    config = {**cfg.to_json(), **arch.to_json(), "mean": mean, "std": std,
              "val_indices": val_idx.tolist(), "n_train": len(train_set),
              DATASETS: {data_key(dataset, "train"): train_set.checksum()},
              PROVENANCE: collect("cpu")}  # fmt: skip
    blob = weights_bytes(model, {**arch.to_json(), "imported": True})
    return _write(target, config, blob, req.overwrite)


def prep_stats(model: str, dataset: str, prep: dict[str, Any] | None,
               train_set: ImageSet) -> tuple[list[float], list[float]]:  # fmt: skip
    """The normalisation the checkpoint expects: timm's for a timm model, OpenOOD's for its
    ResNet on its ID sets, else the ID set's own statistics (as ``oodbench train``)."""
    if prep:
        return list(prep["mean"]), list(prep["std"])
    if model in openood_keys.OPENOOD_MODELS and dataset in openood_keys.NORMALIZATION:
        mean, std = openood_keys.NORMALIZATION[dataset]
        return list(mean), list(std)
    return list(train_set.mean), list(train_set.std)


def _canonical(dataset: str) -> str:
    """``folder:PATH`` with PATH absolute, so the run dir works from any working directory."""
    scheme, sep, path = dataset.partition(":")
    if sep and scheme == "folder" and path:
        return f"folder:{Path(path).expanduser().resolve()}"
    return dataset


def _extra(weights: Path, removed: list[str], prep: dict[str, Any] | None) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(weights, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    info = {"source": str(Path(weights).resolve()), "sha256": digest.hexdigest(),
            "prefixes_removed": removed}  # fmt: skip
    return {"imported": info, **({"data_config": prep} if prep else {})}


def _write(target: Path, config: dict[str, Any], blob: bytes, overwrite: bool) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.import.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        RunDir(tmp).write_config(config)
        save_weights(tmp, blob)
        if target.exists() and overwrite:
            if not RunDir(target).config.is_file():
                raise UserError(f"--overwrite refused: {target} is not an oodbench run dir")
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
