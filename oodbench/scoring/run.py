"""``oodbench score``: cached outputs -> detector scores -> metrics.csv and summary.json.

Resumable at the grain of (detector, OOD set): each finished pair is merged into metrics.csv
at once (under a file lock, written atomically), and a pair already there is skipped unless
``overwrite``. OOD sets are extracted one at a time, in batches, so memory stays bounded by one
OOD set's uint8 images plus its logits and features.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from oodbench import detectors as det_registry
from oodbench import metrics
from oodbench.config import ScoreConfig, TrainConfig, resolve_in
from oodbench.data.imageset import ImageSet
from oodbench.detectors import Detector
from oodbench.errors import UserError
from oodbench.io import atomic_write_json, atomic_write_text, atomic_write_with, file_lock
from oodbench.scoring.extract import Outputs, batches, cached_outputs, read_metadata, weights_hash

KEY = ["detector", "ood_dataset", "protocol", "convention"]
COLUMNS = [
    "run", "seed", "loss", "tau", "model", "id_dataset", *KEY,
    "fpr95", "auroc", "aupr_in", "aupr_out",
    "fpr95_std", "auroc_std", "aupr_in_std", "aupr_out_std", "n_id", "n_ood", "weights_hash",
]  # fmt: skip
VALUES = ["fpr95", "auroc", "aupr_in", "aupr_out"]


# ---------------------------------------------------------------- run dir and detectors


def resolve_run_dir(cfg: ScoreConfig) -> Path:
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
        if not (path / "model.safetensors").is_file() or not (path / "config.json").is_file():
            raise UserError(
                f"{path} is not a trained run (no model.safetensors/config.json); "
                "train it with 'oodbench train' first"
            )
        return path
    found = sorted(runs.glob("*/model.safetensors"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"no trained run under {runs}; run 'oodbench train' first or pass RUN_DIR")
    return found[-1].parent


def build_detectors(cfg: ScoreConfig) -> list[Detector]:
    """Expand "all", create each detector once with its --param values and the flags it takes."""
    flags = {"k": cfg.k, "temperature": cfg.temperature}  # shorthand for knn.k, <det>.temperature
    return det_registry.build(cfg.detectors, cfg.params, flags)


def default_ood(root: str | None, id_name: str) -> list[str]:
    from oodbench.data import DATASETS, OFFLINE_OOD

    root_path = Path(root) if root else None
    return [n for n in OFFLINE_OOD if n != id_name and DATASETS.get(n).available(root_path)]


# ---------------------------------------------------------------- metrics.csv


def read_metrics(path: Path) -> pd.DataFrame:
    """The run's metrics table (empty if absent); a damaged file is a clear error."""
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    try:
        table = pd.read_csv(path, dtype={"weights_hash": str})  # hex must stay text
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a readable CSV ({exc}); move it away to rescore") from exc
    if "weights_hash" not in table.columns:  # written before rows recorded their weights
        table["weights_hash"] = ""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{path} lacks columns {', '.join(missing)}; move it away to rescore")
    return table


def merge_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Read-merge-write under the file lock: rows with the same key are replaced."""
    new = pd.DataFrame(rows, columns=COLUMNS)
    with file_lock(path.parent / f".{path.name}"):
        old = read_metrics(path)
        keep = ~old.set_index(KEY).index.isin(new.set_index(KEY).index)
        parts = [t for t in (old[keep], new) if len(t)]
        merged = pd.concat(parts, ignore_index=True).sort_values(KEY, kind="stable")
        atomic_write_text(path, merged[COLUMNS].to_csv(index=False))


def done_keys(path: Path) -> set[tuple[str, ...]]:
    table = read_metrics(path)
    return {tuple(str(v) for v in row) for row in table[KEY].itertuples(index=False)}


def drop_stale(path: Path, weights_hash: str) -> int:
    """Remove the rows scored with other weights (the run was retrained or extended in place);
    return how many. Rows that recorded no weights (older files) cannot be trusted either."""
    if not path.is_file():
        return 0
    with file_lock(path.parent / f".{path.name}"):
        table = read_metrics(path)
        stale = table["weights_hash"].fillna("").astype(str) != weights_hash
        if stale.any():
            atomic_write_text(path, table.loc[~stale, COLUMNS].to_csv(index=False))
        return int(stale.sum())


def metric_row(
    id_scores: torch.Tensor, ood_scores: torch.Tensor, cfg: ScoreConfig
) -> dict[str, Any]:
    """fpr95/auroc/aupr in percent; under the paper protocol the mean and std of the draws."""
    if cfg.protocol == "full":
        values = metrics.ood_metrics(id_scores, ood_scores, cfg.positive)
        row = {k: 100 * v for k, v in values.items()}
        row.update({f"{k}_std": math.nan for k in VALUES})
        return {**row, "n_id": len(id_scores), "n_ood": len(ood_scores)}
    n_sub = min(len(ood_scores), max(1, len(id_scores) // 5))
    draws = []
    for draw in range(cfg.paper_draws):
        rng = np.random.default_rng(cfg.paper_seed + draw)
        pick = torch.from_numpy(rng.choice(len(ood_scores), size=n_sub, replace=False))
        draws.append(metrics.ood_metrics(id_scores, ood_scores[pick], cfg.positive))
    row = {}
    for k in VALUES:
        vals = 100 * np.array([d[k] for d in draws])
        row[k], row[f"{k}_std"] = float(vals.mean()), float(vals.std())
    return {**row, "n_id": len(id_scores), "n_ood": n_sub}


# ---------------------------------------------------------------- progress and score files


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


def load_scores(path: Path, expected: dict[str, str]) -> torch.Tensor | None:
    """Scores saved by an earlier call, if the file is intact and for the same inputs."""
    try:
        if path.is_file() and read_metadata(path) == expected:
            return load_file(str(path))["scores"]
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError):
        pass  # damaged: recompute and overwrite it
    return None


def save_scores(path: Path, scores: torch.Tensor, metadata: dict[str, str]) -> None:
    tensors = {"scores": scores.contiguous()}
    atomic_write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


# ---------------------------------------------------------------- the run being scored


@dataclass
class Run:
    """One loaded run: the model, its config, the ID sets and the cached outputs."""

    cfg: ScoreConfig
    path: Path
    model: torch.nn.Module
    train_cfg: TrainConfig
    mean: tuple[float, ...]
    std: tuple[float, ...]
    bar: Progress
    model_hash: str = ""
    id_test: ImageSet | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    cache_hits: list[str] = field(default_factory=list)
    splits: tuple[ImageSet, ImageSet | None] | None = None  # (fit, val), loaded once
    _outputs: dict[str, Outputs] = field(default_factory=dict)

    def outputs(self, key: str, data: ImageSet, like: ImageSet | None = None) -> Outputs:
        if key not in self._outputs:
            out, hit = cached_outputs(
                self.path / "cache", key, self.model, data, self.mean, self.std,
                self.model_hash, self.cfg.batch_size, like,
                tracker(self.bar, f"extract {key}", len(data)),
            )  # fmt: skip
            meta = read_metadata(self.path / "cache" / f"{key}.safetensors")
            self.hashes[key] = meta["data_hash"]
            if hit:
                self.cache_hits.append(key)
            self._outputs[key] = out
        return self._outputs[key]

    def drop(self, key: str) -> None:
        self._outputs.pop(key, None)


def load(cfg: ScoreConfig, bar: Progress) -> Run:
    from oodbench.parallel import resolve_device
    from oodbench.train.checkpoint import load_run

    path = resolve_run_dir(cfg)
    model, train_cfg, info = load_run(path, resolve_device(cfg.device))
    mean, std = tuple(info["mean"]), tuple(info["std"])
    model_hash = info.get("weights_sha256") or weights_hash(model)
    run = Run(cfg, path, model, train_cfg, mean, std, bar, model_hash)
    run.id_test = load_dataset(cfg, train_cfg, train_cfg.dataset, "test")
    return run


def load_dataset(cfg: ScoreConfig, tcfg: TrainConfig, name: str, split: str,
                 geometry: tuple[int, int, int] | None = None) -> ImageSet:  # fmt: skip
    from oodbench import data

    root = cfg.root or tcfg.root
    ds = data.load(name, split, root=root, download=cfg.download or tcfg.download,
                   geometry=geometry)  # fmt: skip
    if len(ds) == 0:
        raise UserError(f"dataset {name!r} ({split}) has zero samples; check its files or --root")
    return ds


def id_splits(cfg: ScoreConfig, tcfg: TrainConfig) -> tuple[ImageSet, ImageSet | None]:
    """The run's own fit split (train minus validation) and its validation split."""
    from oodbench.train.plan import validation_split

    full = load_dataset(cfg, tcfg, tcfg.dataset, "train")
    train_idx, val_idx = validation_split(tcfg, full)
    val = full.subset(torch.as_tensor(val_idx)) if len(val_idx) else None
    return full.subset(torch.as_tensor(train_idx)), val


def train_and_val(run: Run) -> tuple[ImageSet, ImageSet | None]:
    """``id_splits`` of the run, loaded once per score call (not once per detector)."""
    if run.splits is None:
        run.splits = id_splits(run.cfg, run.train_cfg)
    return run.splits


# ---------------------------------------------------------------- scoring


def fit_outputs(run: Run) -> Outputs:
    train, _ = train_and_val(run)
    return run.outputs(f"{run.train_cfg.dataset}-train", train)


def write_summary(run: Run, id_out: Outputs) -> dict[str, Any]:
    """ID accuracy and ECE before/after temperature scaling fitted on the validation split."""
    _, val = train_and_val(run)
    probs = metrics.softmax(id_out.logits)
    summary: dict[str, Any] = {
        "id_accuracy": 100 * metrics.id_accuracy(id_out.logits, id_out.labels),
        "ece": 100 * metrics.ece(probs, id_out.labels),
        "ece_ts": None, "temperature": None, "n_test": len(id_out), "n_val": 0,
    }  # fmt: skip
    if val is not None:
        val_out = run.outputs(f"{run.train_cfg.dataset}-val", val)
        t = metrics.fit_temperature(val_out.logits, val_out.labels)
        summary.update(
            temperature=t,
            ece_ts=100 * metrics.ece(metrics.softmax(id_out.logits, t), id_out.labels),
            n_val=len(val_out),
        )
    tc = run.train_cfg
    summary.update(loss=tc.loss, tau=tc.tau, model=tc.model, id_dataset=tc.dataset, seed=tc.seed)
    atomic_write_json(run.path / "summary.json", summary)
    return summary


def score_with_model(run: Run, det: Any, data: ImageSet, like: ImageSet | None) -> torch.Tensor:
    """Detectors that rerun the network (ODIN): batch by batch over the images."""
    out = torch.empty(len(data), dtype=torch.float64)
    advance = tracker(run.bar, f"{det.label} {data.name}", len(data))
    for start, chunk in batches(data, run.cfg.batch_size, like):
        out[start : start + len(chunk)] = det.score_inputs(run.model, chunk.images, run.mean,
                                                           run.std)  # fmt: skip
        advance(len(chunk))
    return out


def scores_for(
    run: Run, det: Detector, name: str, data: ImageSet, like: ImageSet | None
) -> torch.Tensor:
    """Scores of ``det`` on one dataset: from scores/<detector>/<name>.safetensors if they
    match the weights, the data and the hyperparameters, else computed and saved there."""
    key = f"{name}-test"
    out = run.outputs(key, data, like)
    path = run.path / "scores" / det.label / f"{name}.safetensors"
    expected = {"weights_hash": run.model_hash, "data_hash": run.hashes[key], "detector": det.label}
    saved = load_scores(path, expected)
    if saved is not None:
        return saved
    if det.needs_fit and not det.fitted:
        det.fit(fit_outputs(run))
    if "model" in det.needs:
        scores = score_with_model(run, det, data, like)
    else:
        scores = det.score(out).to(torch.float64)
    save_scores(path, scores, expected)
    return scores


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
    if not names:
        raise UserError("no OOD set is available offline; run 'make data' or pass --ood NAME")
    return names


def score_run(cfg: ScoreConfig, quiet: bool = False) -> pd.DataFrame:
    """Score every (detector, OOD set) not yet in metrics.csv; return the new rows.

    ``df.attrs["run_dir"]`` is the run scored and ``df.attrs["cache_hits"]`` the cached
    outputs that were reused instead of extracted. Under torchrun the extraction is sharded
    over the ranks first (oodbench.scoring.sharded) and rank 0 scores from the warm cache.
    """
    from oodbench.scoring import sharded as dist_extract

    if dist_extract.world_size() > 1:
        return dist_extract.score_sharded(cfg, quiet)
    return score_local(cfg, quiet)


def score_local(cfg: ScoreConfig, quiet: bool = False) -> pd.DataFrame:
    """``score_run`` in this process alone."""
    detectors = build_detectors(cfg)  # bad names and flags fail before any work
    new_rows: list[dict[str, Any]] = []
    with progress_bar(quiet) as bar:
        run = load(cfg, bar)
        tc = run.train_cfg
        names = ood_names(cfg, tc.dataset)
        id_set = run.id_test
        assert id_set is not None
        path = run.path / "metrics.csv"
        stale = drop_stale(path, run.model_hash)  # also checks metrics.csv before any write
        if stale:
            from oodbench.console import stderr

            stderr.print(f"[yellow]note:[/] model.safetensors changed since {path} was "
                         f"written: dropped {stale} stale rows; scoring anew",
                         soft_wrap=True)  # fmt: skip
        done = set() if cfg.overwrite else done_keys(path)
        write_summary(run, run.outputs(f"{tc.dataset}-test", id_set))
        base = {"run": run.path.name, "seed": tc.seed, "loss": tc.loss, "tau": tc.tau,
                "model": tc.model, "id_dataset": tc.dataset, "protocol": cfg.protocol,
                "convention": cfg.convention, "weights_hash": run.model_hash}  # fmt: skip
        for ood in names:
            todo = [
                d for d in detectors if (d.label, ood, cfg.protocol, cfg.convention) not in done
            ]
            if not todo:
                continue
            geometry = (id_set.channels, *id_set.size)
            ood_set = load_dataset(cfg, tc, ood, "test", geometry=geometry)
            for det in todo:
                id_scores = scores_for(run, det, tc.dataset, id_set, None)
                ood_scores = scores_for(run, det, ood, ood_set, id_set)
                row = {**base, "detector": det.label, "ood_dataset": ood,
                       **metric_row(id_scores, ood_scores, cfg)}  # fmt: skip
                merge_metrics(path, [row])  # each finished pair is kept at once
                new_rows.append(row)
            run.drop(f"{ood}-test")  # bounded memory: one OOD set at a time
            del ood_set
    table = pd.DataFrame(new_rows, columns=COLUMNS)
    table.attrs.update(run_dir=str(run.path), cache_hits=list(run.cache_hits))
    return table


def rows_table(table: pd.DataFrame, title: str = "New metrics rows (percent)") -> Any:
    from oodbench.console import make_table

    paper = (table["protocol"] == "paper").any()
    rows = []
    for rec in table.to_dict("records"):
        values = [_fmt(rec[k], rec[f"{k}_std"] if paper else None) for k in VALUES]
        rows.append([rec["detector"], rec["ood_dataset"], *values, rec["n_ood"]])
    conventions = ", ".join(sorted(set(table["convention"]) | set(table["protocol"])))
    header = ["detector", "OOD set", "FPR95", "AUROC", "AUPR-In", "AUPR-Out", "n OOD"]
    return make_table(f"{title} [{conventions}]", header, rows)


def _fmt(value: float, std: float | None = None) -> str:
    return f"{value:.2f}" if std is None else f"{value:.2f}±{std:.2f}"
