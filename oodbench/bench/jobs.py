"""The bench as a job graph: train one run, score one run, report one track.

A job is keyed by its inputs: a hash of its kind, the folder it writes (relative to ``--out``,
so a moved bench keeps its keys), its own config (the run's TrainConfig, the ScoreConfig, the
report's runs) and the keys of the jobs it reads (a retrained run is scored again). It reads
only files and writes only its own outputs, so it can run in this process, in a local pool or
as a Slurm job, any number of times, and give the same files: a finished job is skipped, an
interrupted one resumes (training from its checkpoint, scoring from the rows already in
metrics.csv). After its outputs, a job writes its done-marker ``--out/.jobs/<key>.json``
(atomically); a job is done when its marker and its outputs exist, so a run deleted by hand is
computed again. A bench over several settings adds jobs, not kinds: the setting is in each
job's config and folder, hence in its key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from oodbench.config import TRACKS, ScoreConfig, TrainConfig
from oodbench.errors import UserError
from oodbench.io import atomic_write_json, atomic_write_text
from oodbench.runs import JOBS, RunDir, bench_files, done_keys

KINDS = ("train", "score", "report")
PLAN = "plan.json"  # in --out/.jobs: every job planned there, key -> name
# Config fields that say where a job runs or finds its inputs, not what it computes: not in the
# key, so a job keeps its key on another machine (the run dir is ``where``, relative to --out).
WHERE_NOT_WHAT = frozenset({"run_dir", "runs_dir", "root", "download", "device", "compile"})


@dataclass(frozen=True)
class ReportSpec:
    """What a report job renders: its runs (relative to --out) and whether to add the tau table."""

    runs: tuple[str, ...]
    tau_sweep: bool = False


@dataclass(frozen=True)
class SettingsSpec:
    """The combined report of a bench over several settings (``bench --preset a,b``): each
    setting's report folder and its runs, relative to --out (bench/settings.py)."""

    folders: tuple[str, ...]
    runs: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Job:
    kind: str  # one of KINDS
    folder: Path  # the run dir (train, score) or the report's folder
    config: TrainConfig | ScoreConfig | ReportSpec | SettingsSpec
    out: Path  # the bench folder: keys are relative to it, markers live in it
    needs: tuple[str, ...] = ()  # keys of the jobs that must finish first
    units: float = 0.0  # for the time estimate: one training epoch is 1
    fresh: bool = field(default=False, compare=False)  # --overwrite: replace, never resume

    @property
    def key(self) -> str:
        config = {k: v for k, v in asdict(self.config).items() if k not in WHERE_NOT_WHAT}
        spec = {"kind": self.kind, "where": self.where, "config": config, "needs": self.needs}
        text = json.dumps(spec, sort_keys=True, default=str)
        return f"{self.kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    @property
    def where(self) -> str:
        return relative(self.folder, self.out)

    @property
    def name(self) -> str:
        return f"{self.kind} {self.where}"

    @property
    def marker(self) -> Path:
        return self.out / JOBS / f"{self.key}.json"


def relative(path: Path, out: Path) -> str:
    return Path(path).relative_to(out).as_posix() if Path(path) != Path(out) else "."


# ---------------------------------------------------------------------------- done-markers


def is_done(job: Job) -> bool:
    """The job's marker and its outputs exist (outputs deleted by hand: not done)."""
    if not job.marker.is_file():
        return False
    if job.kind == "train":
        return RunDir(job.folder).is_trained
    if job.kind == "score":
        return RunDir(job.folder).is_scored
    return bench_files(job.folder)[0].is_file()


def _ledger(out: Path) -> dict[str, str]:
    try:
        return dict(json.loads((out / JOBS / PLAN).read_text()))
    except (OSError, ValueError, TypeError):  # none yet, or damaged: it is only a convenience
        return {}


def planned(out: Path) -> set[str]:
    """The keys of every job a bench command planned in ``out`` so far (the ledger)."""
    return set(_ledger(out))


def record_plan(jobs: list[Job]) -> None:
    """Add ``jobs`` to the ledger (key -> name): what the benches in this folder consist of."""
    out = jobs[0].out
    ledger = _ledger(out) | {j.key: j.name for j in jobs}
    atomic_write_json(out / JOBS / PLAN, dict(sorted(ledger.items())))


def forget(jobs: list[Job]) -> None:
    """Drop the markers of ``jobs`` (``--overwrite``: everything is done again)."""
    for job in jobs:
        job.marker.unlink(missing_ok=True)


def execute(job: Job, quiet: bool = False, threads: int | None = None) -> bool:
    """Run one job unless it is done; True when it did any work. The marker is written last."""
    if is_done(job):
        return False
    if threads:  # a job in a pool of CPU slots: its share of the cores
        import torch

        torch.set_num_threads(threads)
    worked = {"train": _train, "score": _score, "report": _report}[job.kind](job, quiet)
    if not all(RunDir(job.out / where).is_scored for where in report_runs(job)):
        return worked  # a partial report: rendered again once the missing runs are scored
    atomic_write_json(job.marker, {"kind": job.kind, "where": job.where, "needs": job.needs})
    return worked


def report_runs(job: Job) -> tuple[str, ...]:
    """The runs a report job renders (relative to --out); none for the other kinds."""
    if isinstance(job.config, SettingsSpec):
        return tuple(where for runs in job.config.runs for where in runs)
    return job.config.runs if isinstance(job.config, ReportSpec) else ()


# ---------------------------------------------------------------------------- the job kinds


def _train(job: Job, quiet: bool) -> bool:
    """Train (or resume) one run; False when it was already finished."""
    from oodbench.train.loop import train

    cfg, run = job.config, RunDir(job.folder)
    assert isinstance(cfg, TrainConfig)
    # Resuming with more --epochs extends a finished run; with the same epochs it is kept.
    resume = not job.fresh and run.state.exists()
    if resume and run.epochs_done() >= cfg.epochs:
        return False
    # A run killed before its first checkpoint has nothing to keep: it starts again.
    overwrite = job.fresh or (run.path.exists() and not resume)
    train(cfg, run.path.parent, name=run.name, resume=resume, overwrite=overwrite, quiet=quiet)
    return True


def _score(job: Job, quiet: bool) -> bool:
    """Score every missing (detector, OOD set) of one run; False when none was missing."""
    from oodbench.scoring.run import score_run

    cfg = job.config
    assert isinstance(cfg, ScoreConfig)
    cfg = replace(cfg, run_dir=str(job.folder))  # where the run is now, wherever --out moved
    if scored(cfg):  # a resumed bench does not redo a finished run's tuning
        return False
    return len(score_run(cfg, quiet=quiet)) > 0


def setting_folder(job: Job) -> Path:
    """The folder of a report job's setting: --out for one setting, --out/<preset> for several
    (plan.track_dir puts a track folder, far or near, under it when there are several tracks)."""
    if job.folder != job.out and job.folder.name in TRACKS:
        return job.folder.parent
    return job.folder


def scored(cfg: ScoreConfig) -> bool:
    """True when metrics.csv holds every (detector, OOD set) row this score call would write,
    summary.json the validation results of every detector (written last by a finished score)
    and the run has the overconfidence track's rows (``track_scored``)."""
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
    rows = all((lab, o, cfg.protocol, cfg.convention) in done for lab in labels for o in cfg.ood)
    validated = set(labels) <= set(run.read_summary().get("validation") or {})
    return rows and validated and track_scored(run, cfg, labels)


def track_scored(run: RunDir, cfg: ScoreConfig, labels: list[str]) -> bool:
    """The overconfidence track's rows (issue 24) are there: failure.csv for every detector on
    the ID test set (and the shifted mix), shift.csv for the ID test set (and every shifted
    set), fsood.csv for every (detector, OOD set) when there are shifted sets. A run scored
    before the track is scored again, which adds only these rows (its metrics.csv rows and
    cached scores are kept). Reads three small CSVs: no data, no network."""
    from oodbench.scoring import rowfiles as R
    from oodbench.scoring.confidence import MIX, shift_names

    id_name = str(run.read_config()["dataset"])
    shifted = shift_names(id_name, cfg.shift_size) if cfg.shift else []
    sets = [id_name, *([f"{id_name}-{MIX}"] if shifted else [])]
    failure = R.read_rows(run.table(R.FAILURE_FILE), R.FAILURE_COLUMNS)
    have = set(zip(failure["detector"].astype(str), failure["dataset"].astype(str), strict=True))
    if not {(lab, s) for lab in labels for s in sets} <= have:
        return False
    shift = R.read_rows(run.table(R.SHIFT_FILE), R.SHIFT_COLUMNS)
    if not {id_name, *shifted} <= set(shift["dataset"].astype(str)):
        return False
    fsood = done_keys(run.table(R.FSOOD_FILE)) if shifted else set()
    return all((lab, o, cfg.protocol, cfg.convention) in fsood
               for lab in labels for o in cfg.ood) if shifted else True  # fmt: skip


def _report(job: Job, quiet: bool) -> bool:
    """Render the report of the runs scored so far, listing the runs still missing in it."""
    from oodbench.bench.tausweep import print_headline, write_tau_table
    from oodbench.report import render

    spec = job.config
    if isinstance(spec, SettingsSpec):  # the combined report of several settings
        from oodbench.report.across import write_across

        write_across(job.out, spec.folders, spec.runs)
        return True
    assert isinstance(spec, ReportSpec)
    runs = [job.out / where for where in spec.runs]
    done = [d for d in runs if RunDir(d).is_scored]
    if not done:
        raise UserError(f"nothing to report in {job.folder} yet: no run is scored; re-run the "
                        "same bench command to finish its jobs")  # fmt: skip
    report, plots, _ = bench_files(job.folder)
    text = render(done, "markdown", out=report, plots=plots, runs_dir=job.folder)
    missing = [f"- `{where}`" for where, d in zip(spec.runs, runs, strict=True) if d not in done]
    if missing:  # re-running the bench command scores them and renders the report again
        note = "## Not finished\n\nThese runs are not scored yet:\n\n" + "\n".join(missing)
        atomic_write_text(report, f"{text.rstrip()}\n\n{note}\n")
    if spec.tau_sweep:  # one table per setting, next to its track folders
        write_tau_table(setting_folder(job), done)
    else:
        print_headline(done)
    return True
