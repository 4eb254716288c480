"""``oodbench bench``: train CE and LogitNorm, score every detector, write the report.

Layout under ``--out`` (default ``runs/bench``):
  one seed:    ce/, logitnorm/                      (+ report.md, plots/)
  many seeds:  seed0/ce/, seed0/logitnorm/, seed1/...
  tau sweep:   ce/, logitnorm-t0.01/, logitnorm-t0.04/, ...  (+ tau_sweep.csv)
  --losses:    one folder per loss, ce/, t2fnorm/, ... (the report adds the loss x detector matrix)
Every stage is resumable: finished trainings and finished (detector, OOD set) rows are kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from oodbench import losses
from oodbench.config import (
    NEAR_SETS,
    NEAR_SPLITS,
    PRESET_TAU_LOSS,
    BenchConfig,
    ScoreConfig,
    TrainConfig,
)
from oodbench.console import stderr
from oodbench.errors import EnvironmentFault, UserError
from oodbench.runs import RunDir, bench_files, done_keys, ood_means

# Units of work for the time estimate: one training epoch is 1 unit; scoring one run on every
# detector costs about this many epochs of small_cnn on Fashion-MNIST (measured on 2 cores).
SCORE_UNITS = 3.0


@dataclass(frozen=True)
class Stage:
    kind: str  # "train" or "score"
    run_dir: Path
    train: TrainConfig
    units: float
    track: str = "far"


def plan(cfg: BenchConfig) -> list[Stage]:
    """Every training and scoring stage, in order, with its run dir."""
    stages: list[Stage] = []
    for track in cfg.tracks:
        base = cfg.train_config()
        if track == "near" and base.dataset in NEAR_SPLITS:  # a class split: its own runs
            base = replace(base, dataset=NEAR_SPLITS[base.dataset])
        elif track == "near" and "far" in cfg.tracks:  # NEAR_SETS: scored on the far runs
            continue
        for seed in cfg.seeds:
            folder = track_dir(cfg, track)
            folder = folder / f"seed{seed}" if len(cfg.seeds) > 1 else folder
            for name, tcfg in _runs_for(cfg, replace(base, seed=seed)):
                stages.append(Stage("train", folder / name, tcfg, float(tcfg.epochs), track))
                stages.append(Stage("score", folder / name, tcfg, SCORE_UNITS, track))
    return stages


def track_dir(cfg: BenchConfig, track: str) -> Path:
    """``--out`` itself for the far track alone (the 0.1.0 layout), else ``--out/<track>``."""
    return Path(cfg.out) if cfg.tracks == ("far",) else Path(cfg.out) / track


def track_sets(cfg: BenchConfig, stage: Stage) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(test OOD sets, validation OOD sets) of a stage: the near track adds the held-out
    classes of its ID set (test images to test, training images to validation)."""
    from oodbench.scoring.tune import DEFAULT

    val = cfg.val_ood or (DEFAULT,)  # the headline's choice needs validation sets
    extra = NEAR_SETS.get(stage.train.dataset, ()) if "near" in cfg.tracks else ()
    if stage.track == "near" and extra:  # the near track alone, on its own runs
        return extra, val
    if stage.track != "near":
        return extra + cfg.ood_sets(), val  # the report splits near from far (is_near)
    from oodbench.data import DATASETS

    near = [(n, s.ood_role) for n, s in DATASETS.items() if s.near_of == stage.train.dataset]
    test = tuple(n for n, role in near if role == "test")
    return test + cfg.ood_sets(), tuple(n for n, role in near if role == "validation") + val


def _runs_for(cfg: BenchConfig, base: TrainConfig) -> list[tuple[str, TrainConfig]]:
    if cfg.losses:  # the loss x detector study: one run per loss, same recipe and seed
        # the preset's (or --tau) tau is LogitNorm's; every other loss keeps its own defaults
        # (config.preset_for_loss, which `train --preset` uses too)
        tau = {"tau": base.loss_params["tau"]} if "tau" in base.loss_params else {}
        return [
            (name, replace(base, loss=name, loss_params=tau if name == PRESET_TAU_LOSS else {}))
            for name in cfg.losses
        ]
    runs = [("ce", replace(base, loss="ce"))]
    if cfg.tau_sweep:
        runs += [
            (f"logitnorm-t{t:g}", replace(base, loss="logitnorm", loss_params={"tau": t}))
            for t in cfg.tau_sweep
        ]
    else:
        runs.append(("logitnorm", replace(base, loss="logitnorm")))
    return runs


def run_bench(cfg: BenchConfig, quiet: bool = False) -> Path:
    """Run (or resume) the whole bench; return the report path."""
    try:
        return _run_bench(cfg, quiet)
    except EnvironmentFault as fault:  # a full disk hours in: say how to keep what is done
        then = "finished stages are kept; then rerun the same bench with --resume"
        raise fault.with_next(then) from fault


def _run_bench(cfg: BenchConfig, quiet: bool) -> Path:
    stages = plan(cfg)
    _check_names(cfg)
    _check_out(cfg, stages)
    clock = _Clock(sum(s.units for s in stages))
    for i, stage in enumerate(stages, 1):
        what = f"{stage.kind} {stage.run_dir.relative_to(cfg.out)}"
        stderr.print(f"[bold cyan]bench[/] stage {i}/{len(stages)}: {what}  ·  {clock.status()}")
        worked = _train(stage, cfg, quiet) if stage.kind == "train" else _score(stage, cfg, quiet)
        # Stages a resumed bench finds done cost nothing: they must not skew the time estimate.
        clock.done(stage.units) if worked else clock.skip(stage.units)
    for track in cfg.tracks:
        run_dirs = [s.run_dir for s in stages if s.kind == "score" and s.track == track]
        if not run_dirs:  # near-OOD sets scored on the far runs: in the far report
            continue
        if len(cfg.tracks) > 1:
            stderr.print(f"[bold cyan]bench[/] {track}-OOD track")
        report = _report(cfg, run_dirs, track_dir(cfg, track))
    stderr.print(f"[bold cyan]bench[/] finished in {clock.elapsed()}; report: {report}")
    return report


def _check_names(cfg: BenchConfig) -> None:
    """Unknown detector or OOD names fail now, not after hours of training."""
    from oodbench.data import DATASETS
    from oodbench.scoring.run import build_detectors
    from oodbench.scoring.tune import val_names

    build_detectors(ScoreConfig(detectors=cfg.detectors, params=cfg.detector_params()))
    for name in cfg.losses:
        losses.LOSSES.get(name)
    for name in cfg.ood_sets():
        DATASETS.get(name)
    val_names(ScoreConfig(tune=cfg.tune, val_ood=cfg.val_ood, root=cfg.root), "",
              cfg.ood_sets())  # a set in both roles fails now  # fmt: skip


def _check_out(cfg: BenchConfig, stages: list[Stage]) -> None:
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the bench runs and report")
    started = [s.run_dir for s in stages if s.kind == "train" and s.run_dir.exists()]
    if started and not (cfg.resume or cfg.overwrite):
        raise UserError(
            f"{cfg.out} already holds runs ({started[0].name}, ...); pass --resume to continue "
            "them, --overwrite to start again, or choose another --out"
        )


def _train(stage: Stage, cfg: BenchConfig, quiet: bool) -> bool:
    """Train (or resume) one run; False when it was already finished."""
    from oodbench.train.loop import train

    run_dir = stage.run_dir
    # Resuming with more --epochs extends a finished run; with the same epochs it is kept.
    resume = cfg.resume and RunDir(run_dir).state.exists()
    if resume and RunDir(run_dir).epochs_done() >= stage.train.epochs:
        return False
    # A run killed before its first checkpoint has nothing to keep: --resume starts it again.
    fresh = cfg.overwrite or (cfg.resume and run_dir.exists())
    train(stage.train, run_dir.parent, name=run_dir.name, resume=resume,
          overwrite=fresh and not resume, quiet=quiet)  # fmt: skip
    return True


def _score(stage: Stage, cfg: BenchConfig, quiet: bool) -> bool:
    """Score every missing (detector, OOD set) of one run; False when none was missing."""
    from oodbench.scoring.run import score_run

    ood, val_ood = track_sets(cfg, stage)
    score_cfg = ScoreConfig(
        run_dir=str(stage.run_dir),
        detectors=cfg.detectors,
        params=cfg.detector_params(),
        ood=ood,
        protocol="paper",
        positive="id",
        device=cfg.device,
        root=cfg.root,
        download=cfg.download,
        tune=cfg.tune,
        val_ood=val_ood,
        precision="bf16" if cfg.precision == "bf16" else "fp32",  # auto: fp32 extraction
    )
    if _scored(score_cfg, ood):  # a resumed bench does not redo a finished run's tuning
        return False
    return len(score_run(score_cfg, quiet=quiet)) > 0


def _scored(cfg: ScoreConfig, ood: tuple[str, ...]) -> bool:
    """True when metrics.csv holds every (detector, OOD set) row this stage would write and
    summary.json the validation results of every detector (written last by a finished score)."""
    from oodbench.scoring.run import build_detectors
    from oodbench.scoring.tune import explicit_params, grid_of

    run = RunDir(Path(str(cfg.run_dir)))
    if not run.metrics.exists():
        return False
    explicit = explicit_params(cfg)
    detectors = build_detectors(cfg)
    for det in detectors:  # the labels the scoring stage will give them (tune_one)
        det.tuned = cfg.tune and bool(grid_of(det, explicit))
    labels = [det.label for det in detectors]
    done = done_keys(run.metrics)
    rows = all((lab, o, cfg.protocol, cfg.convention) in done for lab in labels for o in ood)
    return rows and set(labels) <= set(run.read_summary().get("validation") or {})


def _report(cfg: BenchConfig, run_dirs: list[Path], folder: Path) -> Path:
    from oodbench.report import render

    report, plots, _ = bench_files(folder)
    render(run_dirs, "markdown", out=report, plots=plots, runs_dir=folder)
    if cfg.tau_sweep:
        from oodbench.bench.tausweep import write_tau_table

        write_tau_table(cfg, run_dirs)
    else:
        print_headline(run_dirs)
    return report


def _average(run_dir: Path) -> pd.DataFrame:
    return ood_means(RunDir(run_dir).read_metrics(), "paper", "id-positive")


def headline(run_dirs: list[Path]) -> dict[str, dict[str, float]]:
    """Per loss (mean over seeds): MSP and best-detector average FPR95/AUROC, and ID accuracy."""
    by_loss: dict[str, list[Path]] = {}
    for run_dir in run_dirs:  # the loss from config.json ("elogitnorm" contains "logitnorm")
        by_loss.setdefault(str(RunDir(run_dir).read_config().get("loss", "ce")), []).append(run_dir)
    avg = {loss: sum(_average(d) for d in dirs) / len(dirs) for loss, dirs in by_loss.items()}
    acc = {
        loss: sum(RunDir(d).read_summary()["id_accuracy"] for d in dirs) / len(dirs)
        for loss, dirs in by_loss.items()
    }
    from oodbench.bench.tausweep import best_on_validation

    # Picked on the validation OOD sets (summary.json), reported on the test sets.
    common = set.intersection(*(set(a.index) for a in avg.values()))
    best_det = best_on_validation(by_loss, common)
    return {
        loss: {
            "accuracy": acc[loss],
            "msp_fpr95": float(avg[loss].loc["msp", "fpr95"]),
            "msp_auroc": float(avg[loss].loc["msp", "auroc"]),
            "best_detector": best_det,  # type: ignore[dict-item]
            "best_fpr95": float(avg[loss].loc[best_det, "fpr95"]),
            "best_auroc": float(avg[loss].loc[best_det, "auroc"]),
        }
        for loss in avg
    }


def print_headline(run_dirs: list[Path]) -> None:
    from rich.panel import Panel
    from rich.table import Table

    from oodbench.console import stdout

    numbers = headline(run_dirs)
    best = next(iter(numbers.values()))["best_detector"]
    table = Table(show_header=True, header_style="bold", box=None)
    for col in ("", "ID acc", "MSP FPR95 ↓", "MSP AUROC ↑", f"{best} FPR95 ↓", f"{best} AUROC ↑"):
        table.add_column(col, justify="right")
    for loss, n in numbers.items():
        label = losses.title(loss)
        table.add_row(label, *(f"{n[k]:.2f}" for k in ("accuracy", "msp_fpr95", "msp_auroc",
                                                          "best_fpr95", "best_auroc")))  # fmt: skip
    title = "oodbench headline: averages over the OOD sets (paper protocol, ID positive, %)"
    stdout.print(Panel(table, title=title, expand=False))


class _Clock:
    """Elapsed time and an estimate of the time left, from the units of work done so far."""

    def __init__(self, total_units: float, now: Callable[[], float] = time.monotonic) -> None:
        self.total, self.units_done, self.now = total_units, 0.0, now
        self.start = now()

    def done(self, units: float) -> None:
        self.units_done += units

    def skip(self, units: float) -> None:
        self.total -= units

    def elapsed(self) -> str:
        return _hms(self.now() - self.start)

    def status(self) -> str:
        if self.units_done == 0:
            return f"elapsed {self.elapsed()}, estimating time left"
        rate = (self.now() - self.start) / self.units_done
        return f"elapsed {self.elapsed()}, about {_hms(rate * (self.total - self.units_done))} left"


def _hms(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"
