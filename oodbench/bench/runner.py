"""``oodbench bench``: train each loss (default CE and LogitNorm), score every detector, report.

The bench is a job graph (``plan.graph``: train one run -> score it -> report its track), each
job keyed by its inputs and done-marked when finished (``jobs``), so any job can run anywhere
and a resumed bench runs only what is missing. By default the jobs run here, one after another;
``--launcher local`` and ``slurm`` hand them to submitit (``launch``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from oodbench import losses
from oodbench.bench.jobs import Job, execute, forget, planned, record_plan
from oodbench.bench.launch import SERIAL, Launch, describe, run_local, run_slurm
from oodbench.bench.plan import Stage, graph, plan  # noqa: F401  (Stage, plan: the API)
from oodbench.bench.settings import settings_graph
from oodbench.config import BenchConfig, ScoreConfig
from oodbench.console import stderr
from oodbench.errors import EnvironmentFault, UserError
from oodbench.runs import bench_files


def run_bench(cfg: BenchConfig | list[BenchConfig], quiet: bool = False,
              launch: Launch = SERIAL, out: Path | None = None) -> Path:  # fmt: skip
    """Run (or resume) the whole bench; return the (last) report's path. Several configs
    (bench/settings.py: one per preset, each in ``out/<preset>``) make one bench in ``out``."""
    cfgs = [cfg] if isinstance(cfg, BenchConfig) else list(cfg)
    try:
        return _run_bench(cfgs, Path(out or cfgs[0].out), launch, quiet)
    except EnvironmentFault as fault:  # a full disk hours in: say how to keep what is done
        then = "finished stages are kept; then rerun the same bench with --resume"
        raise fault.with_next(then) from fault


def _run_bench(cfgs: list[BenchConfig], out: Path, launch: Launch, quiet: bool) -> Path:
    for cfg in cfgs:  # unknown detectors, losses or sets fail now, not hours in
        _check_names(cfg)
    # train -> score -> report, each keyed by its inputs (several settings: a combined report)
    jobs = graph(cfgs[0]) if len(cfgs) == 1 else settings_graph(cfgs, out)
    cfg = cfgs[0]  # --resume and --overwrite are the same for every setting
    _check_out(cfg, out, jobs)  # runs already there: --resume continues them, --overwrite replaces
    if not launch.dry_run:
        record_plan(jobs)  # the same command again continues these jobs
    if cfg.overwrite:
        forget(jobs)  # no job counts as done
    report = bench_files(jobs[-1].folder)[0]
    if launch.launcher == "slurm":  # submit and return; the same command resubmits what failed
        ids = run_slurm(jobs, launch)
        stderr.print(f"[bold cyan]bench[/] {len(ids)} Slurm job(s) to run; report: {report}")
        return report
    failed = run_local(jobs, launch, quiet) if launch.launcher == "local" else {}
    # Serial: every job here. Local: the pool trained and scored; the reports print here.
    run_serial(jobs if launch.launcher == "serial" else [j for j in jobs if j.kind == "report"],
               quiet)  # fmt: skip
    if failed:  # the report rendered what is done and listed the rest
        raise UserError(describe(failed, out))
    stderr.print(f"[bold cyan]bench[/] report: {report}")
    return report


def run_serial(jobs: list[Job], quiet: bool) -> None:
    """Run the jobs here, in order, with a time estimate from the work done so far."""
    clock = _Clock(sum(j.units for j in jobs))
    for i, job in enumerate(jobs, 1):
        stderr.print(f"[bold cyan]bench[/] stage {i}/{len(jobs)}: {job.name}  ·  {clock.status()}")
        # Jobs a resumed bench finds done cost nothing: they must not skew the time estimate.
        clock.done(job.units) if execute(job, quiet) else clock.skip(job.units)
    stderr.print(f"[bold cyan]bench[/] finished in {clock.elapsed()}")


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
    val_names(ScoreConfig(tune=cfg.tune, val_ood=cfg.val_sets(), root=cfg.root), "",
              cfg.ood_sets())  # a set in both roles fails now  # fmt: skip


def _check_out(cfg: BenchConfig, out: Path, jobs: list[Job]) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the bench runs and report")
    started = [j.folder for j in jobs if j.kind == "train" and j.folder.exists()]
    # The same command again (every job planned before) continues: the jobs are the same work.
    same = {j.key for j in jobs} <= planned(out)
    if started and not (cfg.resume or cfg.overwrite or same):
        raise UserError(
            f"{out} already holds runs ({started[0].name}, ...); pass --resume to continue "
            "them, --overwrite to start again, or choose another --out"
        )


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
