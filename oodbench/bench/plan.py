"""The bench's plan: which runs (settings x losses x seeds x tracks), and the job graph that
trains, scores and reports them (``jobs``).

Layout under ``--out`` (default ``runs/bench``):
  one seed:    ce/, logitnorm/                      (+ report.md, plots/)
  many seeds:  seed0/ce/, seed0/logitnorm/, seed1/...
  tau sweep:   ce/, logitnorm-t0.01/, logitnorm-t0.04/, ...  (+ tau_sweep.csv)
  --losses:    one folder per loss, ce/, t2fnorm/, ... (the report adds the loss x detector matrix)
  .jobs/       the done-marker of every finished job (and the launchers' logs)
  --preset a,b:  a/..., b/... (each setting's layout as above), report.md across them
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from oodbench.bench.jobs import Job, ReportSpec
from oodbench.config import (
    NEAR_SETS,
    NEAR_SPLITS,
    PRESET_TAU_LOSS,
    BenchConfig,
    ScoreConfig,
    TrainConfig,
)

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

    val = cfg.val_sets() or (DEFAULT,)  # the headline's choice needs validation sets
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


def score_config(cfg: BenchConfig, stage: Stage) -> ScoreConfig:
    """What the score job of a stage runs: the paper protocol, ID positive, tuned by default."""
    ood, val_ood = track_sets(cfg, stage)
    return ScoreConfig(
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
        shift=cfg.shift,
        shift_size=cfg.shift_size,
        precision="bf16" if cfg.precision == "bf16" else "fp32",  # auto: fp32 extraction
    )


def graph(cfg: BenchConfig, out: Path | None = None) -> list[Job]:
    """Every job of the bench, each after the jobs it needs: train -> score (per run) -> report
    (per track folder, after the scores of all its runs). ``out``: the folder that keeps the
    done-markers and that keys are relative to, when ``cfg.out`` is one setting's folder in it
    (bench/settings.py)."""
    out, jobs, trained = Path(out or cfg.out), [], {}
    reports: dict[Path, list[Job]] = {}
    for stage in plan(cfg):
        if stage.kind == "train":
            job = Job("train", stage.run_dir, stage.train, out, units=stage.units,
                      fresh=cfg.overwrite)  # fmt: skip
            trained[stage.run_dir] = job.key
        else:
            job = Job("score", stage.run_dir, score_config(cfg, stage), out,
                      needs=(trained[stage.run_dir],), units=stage.units)  # fmt: skip
            reports.setdefault(track_dir(cfg, stage.track), []).append(job)
        jobs.append(job)
    for folder, scores in reports.items():
        spec = ReportSpec(tuple(s.where for s in scores), bool(cfg.tau_sweep))
        jobs.append(Job("report", folder, spec, out, needs=tuple(s.key for s in scores)))
    return jobs
