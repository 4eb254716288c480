"""``oodbench score``: cached outputs -> detector scores -> metrics.csv and summary.json.

Resumable at the grain of (detector, OOD set): each finished pair is merged into metrics.csv
at once (oodbench.runs: under a file lock, written atomically), and a pair already there is
skipped unless ``overwrite``. OOD sets are extracted one at a time, in batches, so memory stays
bounded by one OOD set's uint8 images plus its logits and features. Under torchrun the
extraction is first sharded over the ranks (``sharded.prefetch``), then rank 0 scores here from
the warm cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from rich.progress import Progress

from oodbench import detectors as det_registry
from oodbench import metrics
from oodbench.config import ScoreConfig, TrainConfig
from oodbench.data.imageset import ImageSet
from oodbench.detectors import Detector
from oodbench.models.precision import resolve as resolve_precision
from oodbench.provenance import DATASETS, PROVENANCE, SCORE_COMMANDS, check_data, collect
from oodbench.runs import (
    COLUMNS,
    VALUES,
    RunDir,
    done_keys,
    drop_changed_params,
    drop_stale,
)
from oodbench.scoring import confidence, sharded, tune
from oodbench.scoring.extract import (
    Outputs,
    batches,
    cache_expectation,
    cached_outputs,
    read_metadata,
)
from oodbench.scoring.inputs import (
    id_splits,
    load_dataset,
    load_network,
    ood_names,
    progress_bar,
    resolve_run_dir,
    tracker,
)
from oodbench.scoring.rowfiles import FSOOD_FILE
from oodbench.scoring.rows import RowWriter


@dataclass
class ScoreResult:
    """What one ``score_run`` call did: the new metrics rows (``runs.COLUMNS``), the run dir it
    scored, the cached outputs it reused instead of extracting, and the torchrun rank (the CLI
    prints only on rank 0)."""

    rows: pd.DataFrame
    run_dir: Path
    cache_hits: list[str] = field(default_factory=list)
    rank: int = 0

    def __len__(self) -> int:
        return len(self.rows)


# ---------------------------------------------------------------- detectors and metrics


def build_detectors(cfg: ScoreConfig) -> list[Detector]:
    """Expand "all", create each detector once with its --param values and the flags it takes."""
    flags = {"k": cfg.k, "temperature": cfg.temperature}  # shorthand for knn.k, <det>.temperature
    return det_registry.build(cfg.detectors, cfg.params, flags)


# ---------------------------------------------------------------- the run being scored


@dataclass
class Run:
    """One loaded run: the model, its config, the ID sets and the cached outputs."""

    cfg: ScoreConfig
    dir: RunDir
    model: torch.nn.Module
    train_cfg: TrainConfig
    mean: tuple[float, ...]
    std: tuple[float, ...]
    bar: Progress
    model_hash: str = ""
    head: str = "raw"  # the head scored: inputs.load_network
    id_test: ImageSet | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    cache_hits: list[str] = field(default_factory=list)
    splits: tuple[ImageSet, ImageSet | None] | None = None  # (fit, val), loaded once
    datasets: dict[str, str] = field(default_factory=dict)  # "<set>:<split>" -> checksum read
    data_changed: list[str] = field(default_factory=list)  # --allow-data-change warnings
    _outputs: dict[str, Outputs] = field(default_factory=dict)

    def outputs(self, key: str, data: ImageSet, like: ImageSet | None = None) -> Outputs:
        if key not in self._outputs:
            out, hit = cached_outputs(
                self.dir.cache, key, self.model, data, self.mean, self.std,
                self.model_hash, self.cfg.batch_size, like,
                tracker(self.bar, f"extract {key}", len(data)), precision=self.cfg.precision,
            )  # fmt: skip
            self.hashes[key] = self._data_hash(key, data, like)
            if hit:
                self.cache_hits.append(key)
            self._outputs[key] = out
        return self._outputs[key]

    def drop(self, key: str) -> None:
        self._outputs.pop(key, None)

    def _data_hash(self, key: str, data: ImageSet, like: ImageSet | None) -> str:
        try:
            return read_metadata(self.dir.cache_file(key))["data_hash"]
        except OSError:  # the cache was deleted since (by hand): hash the data again
            return cache_expectation(data, self.mean, self.std, self.model_hash, like)["data_hash"]


def load(cfg: ScoreConfig, bar: Progress) -> Run:
    from oodbench.parallel import resolve_device

    run_dir = resolve_run_dir(cfg)
    net = load_network(run_dir.path, resolve_device(cfg.device), cfg.head)
    resolve_precision(cfg.precision, next(net.model.parameters()).device)  # fail before any data
    mean, std = tuple(net.info["mean"]), tuple(net.info["std"])
    # The ID test split is loaded by score_local after the selection step (scoring.tune),
    # which must not read any test set.
    return Run(cfg, run_dir, net.model, net.train_cfg, mean, std, bar, net.model_hash, net.head)


def train_and_val(run: Run) -> tuple[ImageSet, ImageSet | None]:
    """``id_splits`` of the run, loaded once per score call (not once per detector)."""
    if run.splits is None:
        run.splits = id_splits(run.cfg, run.train_cfg, run.datasets)
        check_id_data(run)
    return run.splits


def check_id_data(run: Run) -> None:
    """The ID data read so far must be what the run was trained on (config.json's checksums;
    a run of 0.1.0 recorded none): a UserError, or a recorded warning with
    --allow-data-change."""
    recorded = run.dir.config_values().get(DATASETS) or {}
    for line in check_data(recorded, run.datasets, run.cfg.allow_data_change):
        if line not in run.data_changed:
            from oodbench.console import stderr

            stderr.print(f"[yellow]warning:[/] {line} (--allow-data-change)", soft_wrap=True)
            run.data_changed.append(line)


def provenance_summary(run: Run) -> dict[str, Any]:
    """What this score call ran with, merged with what earlier calls of the run recorded."""
    old = run.dir.read_summary()
    now = collect(next(run.model.parameters()).device)

    def union(key: str, new: list[str]) -> list[str]:
        return list(dict.fromkeys([*(old.get(key) or []), *new]))

    record: dict[str, Any] = {PROVENANCE: now, DATASETS: (old.get(DATASETS) or {}) | run.datasets,
                              SCORE_COMMANDS: union(SCORE_COMMANDS, [now["command"]])}  # fmt: skip
    if run.data_changed:
        record["data_changed"] = union("data_changed", run.data_changed)
    return record


# ---------------------------------------------------------------- scoring


def fit_outputs(run: Run, split: str = "train") -> Outputs:
    """What a detector is fitted on: its ``fit_split``, the ID training split or the ID
    validation split (the training split when the run holds no validation split out)."""
    train, val = train_and_val(run)
    if split == "val" and val is not None:
        return run.outputs(f"{run.train_cfg.dataset}-val", val)
    return run.outputs(f"{run.train_cfg.dataset}-train", train)


def write_summary(run: Run, id_out: Outputs, extra: dict[str, Any] | None = None) -> dict[str, Any]:
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
        t, warning = fit_temperature(val_out)
        summary.update(
            temperature=t,
            temperature_warning=warning,
            ece_ts=100 * metrics.ece(metrics.softmax(id_out.logits, t), id_out.labels),
            n_val=len(val_out),
            val_accuracy=100 * metrics.id_accuracy(val_out.logits, val_out.labels),
        )
    tc = run.train_cfg
    summary.update(loss=tc.loss, tau=tc.tau, model=tc.model, id_dataset=tc.dataset, seed=tc.seed,
                   head=run.head)  # fmt: skip
    summary.update(extra or {})
    run.dir.write_summary(summary)
    return summary


SELECTION_KEYS = ("test_ood", "val_ood", "tune_criterion", "tuned", "validation",
                  PROVENANCE, DATASETS, SCORE_COMMANDS, "data_changed")  # fmt: skip


def kept_selection(run: Run) -> dict[str, Any]:
    """The selection and provenance keys summary.json holds now (written again unchanged with
    the summary)."""
    old = run.dir.read_summary() if run.dir.summary.is_file() else {}
    return {k: old[k] for k in SELECTION_KEYS if k in old}


def selection_summary(run: Run, selection: tune.Selection, tests: list[str]) -> dict[str, Any]:
    """The sets in each role and what was chosen on validation data, merged with what earlier
    score calls of this run recorded (their rows stay in metrics.csv)."""
    old = run.dir.read_summary() if run.dir.summary.is_file() else {}

    def union(key: str, new: list[str]) -> list[str]:
        return list(dict.fromkeys([*(old.get(key) or []), *new]))

    return {
        "test_ood": union("test_ood", tests),
        "val_ood": union("val_ood", selection.val_sets),
        "tune_criterion": tune.CRITERION,
        "tuned": (old.get("tuned") or {}) | selection.tuned,
        "validation": (old.get("validation") or {}) | selection.validation,
    }


def fit_temperature(val_out: Outputs) -> tuple[float, str | None]:
    """T on the validation split, and the warning when T stopped at a bound of its range (kept
    in summary.json for the report, and printed)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", metrics.TemperatureAtBound)
        t = metrics.fit_temperature(val_out.logits, val_out.labels)
    found = [str(w.message) for w in caught if issubclass(w.category, metrics.TemperatureAtBound)]
    if not found:
        return t, None
    from oodbench.console import stderr

    stderr.print(f"[yellow]warning:[/] {found[0]}", soft_wrap=True)
    return t, found[0]


def _fit_split(run: Run, split: str) -> Outputs:
    return fit_outputs(run) if split == "train" else fit_outputs(run, split)  # type: ignore[call-arg]


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
    expected = {"weights_hash": run.model_hash, "data_hash": run.hashes[key],
                "detector": det.label, "params": det.params_text}  # fmt: skip
    saved = run.dir.load_scores(det.label, name, expected)
    if saved is not None:
        return saved
    if det.needs_fit and not det.fitted:
        det.fit(fit_outputs(run, det.fit_split))
    if "model" in det.needs:
        scores = score_with_model(run, det, data, like)
    else:
        scores = det.score(out).to(torch.float64)
    run.dir.save_scores(det.label, name, scores, expected)
    return scores


def score_run(cfg: ScoreConfig, quiet: bool = False) -> ScoreResult:
    """Score every (detector, OOD set) not yet in metrics.csv; return the new rows.

    Under torchrun the extraction is sharded over the ranks first (``sharded.prefetch``) and
    rank 0 scores from the warm cache; the other ranks return no rows.
    """
    detectors = build_detectors(cfg)  # bad names, flags and OODBENCH_N_BOOT fail before work
    confidence.resamples()
    if sharded.world_size() == 1:
        return score_local(cfg, detectors, quiet)
    from oodbench.parallel import cleanup, init

    ctx = init(cfg.device)
    try:
        run_dir = sharded.prefetch(cfg, ctx, detectors, quiet)
        if ctx.main:
            result = score_local(replace(cfg, run_dir=str(run_dir.path)), detectors, quiet)
        else:
            result = ScoreResult(pd.DataFrame(columns=COLUMNS), run_dir.path)
    finally:  # the other ranks leave now: scoring on rank 0 makes no more collectives
        cleanup(ctx)
    result.rank = ctx.rank
    return result


def score_local(cfg: ScoreConfig, detectors: list[Detector], quiet: bool = False) -> ScoreResult:
    """``score_run`` in this process alone."""
    new_rows: list[dict[str, Any]] = []
    with progress_bar(quiet) as bar:
        run = load(cfg, bar)
        tc = run.train_cfg
        names = ood_names(cfg, tc.dataset)
        _, val = train_and_val(run)
        selection = tune.choose(run, detectors, tune.val_names(cfg, tc.dataset, names), val,
                                lambda split="train": _fit_split(run, split))  # fmt: skip
        detectors = selection.detectors
        # Selection is over: from here on the test sets are read.
        run.id_test = id_set = load_dataset(cfg, tc, tc.dataset, "test", seen=run.datasets)
        check_id_data(run)
        path = run.dir.metrics
        stale = drop_stale(path, run.model_hash)  # also checks metrics.csv before any write
        if stale:
            from oodbench.console import stderr

            stderr.print(f"[yellow]note:[/] the network ({run.dir.weights.name} or --head) "
                         f"changed since {path} was written: dropped {stale} stale rows; "
                         "scoring anew", soft_wrap=True)  # fmt: skip
        changed = drop_changed_params(path, {d.label: d.params_text for d in detectors})
        if changed:
            from oodbench.console import stderr

            stderr.print(f"[yellow]note:[/] dropped {changed} rows of {path} scored with other "
                         "hyperparameter values; scoring anew", soft_wrap=True)  # fmt: skip
        done = set() if cfg.overwrite else done_keys(path)
        write_summary(run, run.outputs(f"{tc.dataset}-test", id_set),
                      kept_selection(run))  # fmt: skip
        base = {"run": run.dir.name, "seed": tc.seed, "loss": tc.loss, "tau": tc.tau,
                "model": tc.model, "id_dataset": tc.dataset, "protocol": cfg.protocol,
                "convention": cfg.convention, "weights_hash": run.model_hash,
                "head": run.head}  # fmt: skip
        geometry = (id_set.channels, *id_set.size)
        fsood = run.dir.table(FSOOD_FILE)
        drop_stale(fsood, run.model_hash)
        done_fs = set() if cfg.overwrite else done_keys(fsood)
        with RowWriter(path) as writer:
            # the overconfidence track: shift.csv, failure.csv, and the shifted mix's scores
            mixed, sample = confidence.track(
                run, detectors, writer, base, id_set,
                lambda det, name, data, like: scores_for(run, det, name, data, like),
                lambda name: load_dataset(cfg, tc, name, "test", geometry, run.datasets),
            )  # fmt: skip
            for ood in names:
                todo = [
                    d
                    for d in detectors
                    if (key := (d.label, ood, cfg.protocol, cfg.convention)) not in done
                    or (d.label in mixed and key not in done_fs)
                ]
                ood_set = load_dataset(cfg, tc, ood, "test", geometry, run.datasets)
                if not todo:  # loaded anyway: summary.json records the checksum of every set
                    continue  # the rows were scored on, also when an earlier call was killed
                for det in todo:
                    id_scores = scores_for(run, det, tc.dataset, id_set, None)
                    ood_scores = scores_for(run, det, ood, ood_set, id_set)
                    head = {**base, "detector": det.label, "ood_dataset": ood,
                            "params": det.params_text}  # fmt: skip
                    key = (det.label, ood, cfg.protocol, cfg.convention)
                    if key not in done:
                        writer.submit(head, id_scores, ood_scores, cfg)
                    if det.label in mixed and key not in done_fs:  # shifted images count as ID
                        both = torch.cat([id_scores[sample], mixed[det.label]])
                        writer.submit(head, both, ood_scores, cfg, path=fsood)
                run.drop(f"{ood}-test")  # bounded memory: one OOD set at a time
                del ood_set
            new_rows = writer.rows()
        # Roles and choices are recorded once the scoring succeeded (a failed command leaves
        # summary.json as it was).
        run.dir.write_summary(run.dir.read_summary() | selection_summary(run, selection, names)
                              | provenance_summary(run))  # fmt: skip
    return ScoreResult(pd.DataFrame(new_rows, columns=COLUMNS), run.dir.path, list(run.cache_hits))


def rows_table(table: pd.DataFrame, title: str = "New metrics rows (percent)") -> Any:
    from rich.markup import escape

    from oodbench.console import make_table

    paper = (table["protocol"] == "paper").any()
    rows = []
    for rec in table.to_dict("records"):
        values = [_fmt(rec[k], rec[f"{k}_std"] if paper else None) for k in VALUES]
        # escape: rich would read a label's "[tuned]" as markup and drop it
        rows.append([escape(rec["detector"]), rec["ood_dataset"], *values, rec["n_ood"]])
    conventions = ", ".join(sorted(set(table["convention"]) | set(table["protocol"])))
    header = ["detector", "OOD set", "FPR95", "AUROC", "AUPR-In", "AUPR-Out", "n OOD"]
    return make_table(f"{title} [{conventions}]", header, rows)


def _fmt(value: float, std: float | None = None) -> str:
    return f"{value:.2f}" if std is None else f"{value:.2f}±{std:.2f}"
