"""What a score call reads before it scores: the run dir, the ID splits, the OOD sets, and the
progress bar. Shared by the orchestrator (``run``) and the torchrun prefetch (``sharded``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oodbench.config import ScoreConfig, TrainConfig, resolve_in
from oodbench.data.imageset import ImageSet
from oodbench.data.split import validation_split
from oodbench.errors import UserError
from oodbench.provenance import data_key
from oodbench.runs import CONFIG, WEIGHTS, RunDir, newest_trained


def resolve_run_dir(cfg: ScoreConfig) -> RunDir:
    """The given run dir (a path, or a run name under --runs-dir), else the newest trained run."""
    runs = Path(cfg.runs_dir)
    if cfg.run_dir is not None:
        path = Path(cfg.run_dir)
        if not path.exists() and "/" not in cfg.run_dir and (runs / cfg.run_dir).exists():
            path = resolve_in(runs, cfg.run_dir)
        if not path.is_dir():
            raise UserError(
                f"run dir {path} does not exist; pass a folder made by 'oodbench train'"
            )
        if not RunDir(path).is_trained:
            raise UserError(
                f"{path} is not a trained run (no {WEIGHTS}/{CONFIG}); "
                "train it with 'oodbench train' first"
            )
        return RunDir(path)
    newest = newest_trained(runs)
    if newest is None:
        raise UserError(f"no trained run under {runs}; run 'oodbench train' first or pass RUN_DIR")
    return newest


@dataclass
class Network:
    """The network a score call scores with: the trained model with the head its loss scores
    with (``head``: "inference" when that head differs from the trained one, else "raw"), its
    TrainConfig, facts about its data (``checkpoint.load_run``) and the hash that keys its caches,
    scores and metrics rows."""

    model: torch.nn.Module
    train_cfg: TrainConfig
    info: dict[str, Any]
    model_hash: str
    head: str


def load_network(run_dir: Path, device: torch.device | str, head: str = "inference") -> Network:
    """The run's model, its linear head replaced by its loss's ``inference_head`` unless
    ``head`` is "raw" (T2FNorm: ``(W / tau, b)``, so the logits are ``fc(h / tau)``; the features
    stay ``h``). Extraction, the cached head and the network-rerunning detectors all see that one
    network. The hash is the weight file's for the trained head and the scored network's
    otherwise, so outputs, scores and rows of the other head are never reused as these."""
    from oodbench.losses import LOSSES, make_loss
    from oodbench.models.weights import load_run
    from oodbench.scoring.extract import weights_hash

    model, tc, info = load_run(run_dir, device)
    trained = info.get("weights_sha256") or weights_hash(model)
    linear = model.get_classifier()
    if head == "raw" or tc.loss not in LOSSES or not isinstance(linear, torch.nn.Linear):
        return Network(model, tc, info, trained, "raw")  # imported models: "imported" loss
    new = make_loss(tc.loss, **tc.loss_params).inference_head(linear.weight, linear.bias)
    if new is None:
        return Network(model, tc, info, trained, "raw")
    with torch.no_grad():
        linear.weight.copy_(new[0])
        if linear.bias is not None and new[1] is not None:
            linear.bias.copy_(new[1])
    return Network(model, tc, info, weights_hash(model), "inference")


def default_ood(root: str | None, id_name: str) -> list[str]:
    from oodbench.data import DATASETS, OFFLINE_OOD

    root_path = Path(root) if root else None
    near = [
        n for n, spec in DATASETS.items() if spec.near_of == id_name and spec.ood_role == "test"
    ]
    return [
        n for n in [*near, *OFFLINE_OOD] if n != id_name and DATASETS.get(n).available(root_path)
    ]


def ood_names(cfg: ScoreConfig, id_name: str) -> list[str]:
    from oodbench.data import DATASETS, OFFLINE_OOD

    names: list[str] = []
    for name in cfg.ood or ("all-available",):
        if name == "all-available":
            expand = default_ood(cfg.root, id_name)
        else:
            expand = [n for n in OFFLINE_OOD if n != id_name] if name == "all-offline" else [name]
        names += [n for n in expand if n not in names]
    for name in names:
        DATASETS.get(name)  # unknown names: a close-match suggestion
        if name == id_name:
            raise UserError(f"--ood {name} is the run's ID dataset; choose another OOD set")
        if DATASETS.get(name).role == "shifted":
            raise UserError(
                f"--ood {name} is a corrupted copy of an ID test set (ID images under shift, "
                "labels kept), not an OOD set; choose another OOD set"
            )
        near_of = DATASETS.get(name).near_of
        if near_of is not None and near_of != id_name:
            raise UserError(
                f"--ood {name} holds held-out classes of {near_of}'s source, so it is near-OOD "
                f"only for a model trained on {near_of}, not on {id_name}; choose another OOD set"
            )
    if not names:
        raise UserError("no OOD set is available offline; run 'make data' or pass --ood NAME")
    return names


def load_dataset(cfg: ScoreConfig, tcfg: TrainConfig, name: str, split: str,
                 geometry: tuple[int, int, int] | None = None,
                 seen: dict[str, str] | None = None) -> ImageSet:  # fmt: skip
    """One dataset split as built; its checksum goes into ``seen`` (the run's record)."""
    from oodbench import data

    root = cfg.root or tcfg.root
    # An imported model records its input geometry and resize recipe (timm's data config):
    # image folders are decoded with them.
    prep = tcfg.extra.get("data_config")
    if prep and geometry is None and name == tcfg.dataset:
        geometry = tuple(prep["input_size"])  # type: ignore[assignment]
    ds = data.load(name, split, root=root, download=cfg.download or tcfg.download,
                   geometry=geometry, preprocess=prep)  # fmt: skip
    if len(ds) == 0:
        raise UserError(f"dataset {name!r} ({split}) has zero samples; check its files or --root")
    if seen is not None:
        seen[data_key(name, split)] = ds.checksum()
    return ds


def id_splits(cfg: ScoreConfig, tcfg: TrainConfig,
              seen: dict[str, str] | None = None) -> tuple[ImageSet, ImageSet | None]:  # fmt: skip
    """The run's own fit split (train minus validation) and its validation split."""
    full = load_dataset(cfg, tcfg, tcfg.dataset, "train", seen=seen)
    train_idx, val_idx = validation_split(tcfg, full)
    val = full.subset(torch.as_tensor(val_idx)) if len(val_idx) else None
    return full.subset(torch.as_tensor(train_idx)), val


def progress_bar(quiet: bool) -> Progress:
    from oodbench.console import stderr

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    # Not on a terminal (a pipe, a log file) rich draws nothing useful but leaves a blank line.
    disable = quiet or not stderr.is_terminal
    return Progress(*columns, console=stderr, transient=True, disable=disable)


def tracker(bar: Progress, what: str, total: int) -> Callable[[int], None]:
    task = bar.add_task(what, total=total)
    return lambda n: bar.advance(task, n)
