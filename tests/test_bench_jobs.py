"""bench as a job graph: keys, dependencies, done-markers, the launchers' options, the Slurm
scripts (printed with --dry-run, and submitted to a stand-in sbatch). The local pool against
the serial bench, and a killed pool, are slow (test_bench_pool.py)."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from _cli import BENCH

from oodbench.bench import jobs as jobs_mod
from oodbench.bench import tausweep
from oodbench.bench.jobs import Job, ReportSpec, execute, is_done
from oodbench.bench.launch import Launch
from oodbench.bench.plan import graph
from oodbench.cli import main
from oodbench.config import BenchConfig, TrainConfig
from oodbench.errors import UserError

STUDY = ["--losses", "ce,logitnorm", "--seeds", "0,1", "-d", "msp", "--ood", "mnist-5k",
         "--val-ood", "gaussian", *BENCH]  # fmt: skip


def _cfg(out: Path, **kw: object) -> BenchConfig:
    return BenchConfig(out=str(out), losses=("ce", "logitnorm"), seeds=(0, 1), epochs=1,
                       detectors=("msp",), tune=False, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_jobs_are_keyed_by_their_inputs_and_wait_for_what_they_read(tmp_path: Path) -> None:
    jobs = graph(_cfg(tmp_path / "a"))
    assert [j.kind for j in jobs].count("train") == 4 and [j.kind for j in jobs][-1] == "report"
    by_key = {j.key: j for j in jobs}
    assert len(by_key) == len(jobs) == 9
    for i, job in enumerate(jobs):  # each after the jobs it reads, which come first
        reads = {"train": set(), "score": {"train"}, "report": {"score"}}[job.kind]
        assert {by_key[k].kind for k in job.needs} == reads
        assert all(jobs.index(by_key[k]) < i for k in job.needs)
    score = next(j for j in jobs if j.kind == "score" and j.where == "seed1/logitnorm")
    assert by_key[score.needs[0]].folder == score.folder  # its own run's training
    assert len(jobs[-1].needs) == 4
    # Stable, and relative to --out: a moved bench keeps its keys.
    assert [j.key for j in graph(_cfg(tmp_path / "b"))] == [j.key for j in jobs]
    # Another recipe: every job changes. Another detector: the trainings stay.
    longer = graph(replace(_cfg(tmp_path / "a"), epochs=2))
    assert not {j.key for j in longer} & set(by_key)
    more = graph(replace(_cfg(tmp_path / "a"), detectors=("msp", "energy")))
    assert {j.key for j in more if j.kind == "train"} <= set(by_key)
    assert not {j.key for j in more if j.kind != "train"} & set(by_key)


def test_a_job_is_done_when_its_marker_and_outputs_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = Job("train", tmp_path / "ce", TrainConfig(), tmp_path)
    calls: list[str] = []

    def fails(job: Job, quiet: bool) -> bool:
        calls.append("fail")
        raise RuntimeError("killed")

    def trains(job: Job, quiet: bool) -> bool:
        calls.append("train")
        job.folder.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "config.json"):
            (job.folder / name).write_text("x")
        return True

    monkeypatch.setattr(jobs_mod, "_train", fails)
    with pytest.raises(RuntimeError):
        execute(job)
    assert not job.marker.exists()  # no marker before the outputs
    monkeypatch.setattr(jobs_mod, "_train", trains)
    assert execute(job) and is_done(job)
    assert not execute(job) and calls == ["fail", "train"]  # done: never recomputed
    (job.folder / "model.safetensors").unlink()  # an output deleted by hand: not done
    assert not is_done(job)
    assert execute(job) and calls[-1] == "train"


def test_a_report_renders_what_is_scored_and_lists_the_rest(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tausweep, "print_headline", lambda run_dirs: None)  # needs a bench's runs
    spec = ReportSpec((run.name, "seed1/ce"))  # one run scored, one not (yet)
    job = Job("report", run.parent, spec, run.parent)
    assert execute(job)
    text = (run.parent / "report.md").read_text()
    assert "# OOD detection report" in text
    assert "## Not finished" in text and "- `seed1/ce`" in text
    assert not job.marker.exists() and not is_done(job)  # rendered again once it is scored


@pytest.mark.parametrize(
    "kwargs",
    [{"launcher": "pbs"}, {"launcher": "local", "devices": ("gpu0",)}, {"dry_run": True},
     {"jobs": 2}, {"launcher": "local", "jobs": 0},
     {"launcher": "local", "jobs": 3, "devices": ("cuda:0", "cuda:1")}],
)  # fmt: skip
def test_bad_launcher_options_are_user_errors(kwargs: dict) -> None:
    with pytest.raises(UserError):
        Launch(**kwargs)


def test_without_submitit_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` fails
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), *STUDY, "--launcher", "local", "--jobs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'oodbench[cluster]'" in err and len(err.splitlines()) == 1
    assert not (out / "seed0").exists()  # nothing was trained


def _scripts(text: str) -> dict[str, str]:
    """Job name -> sbatch script, from the dry run's ``# --- job N: NAME (key K)`` headers."""
    parts = re.split(r"^# --- job \d+: (.+) \(key \S+\)$", text, flags=re.M)[1:]
    return dict(zip(parts[::2], parts[1::2], strict=True))


def _directive(script: str, name: str) -> str | None:
    found = re.search(rf"^#SBATCH --{name}=(\S+)$", script, flags=re.M)
    return found.group(1) if found else None


def test_slurm_dry_run_prints_sbatch_scripts_with_dependencies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    argv = ["bench", "--out", str(out), *STUDY, "--launcher", "slurm", "--dry-run", "--slurm-time",
            "90", "--slurm-partition", "gpu", "--slurm-gpus-per-job", "2"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    scripts = _scripts(text)
    assert len(scripts) == 9 and not out.exists()  # nothing submitted, nothing written
    ids = {name: num for num, name in re.findall(r"^# --- job (\d+): (.+) \(key", text, re.M)}
    for name, script in scripts.items():
        assert script.lstrip().startswith("#!/bin/bash")
        assert _directive(script, "partition") == "gpu" and _directive(script, "time") == "90"
        assert _directive(script, "gpus-per-node") == "2"
        assert _directive(script, "kill-on-invalid-dep") == "yes"
        assert "-m submitit.core._submit" in script and f"{out}/.jobs/slurm" in script
        kind, where = name.split(" ")
        wanted = {
            "train": None,
            "score": f"afterok:{ids.get(f'train {where}')}",
            "report": "afterany:" + ":".join(ids[f"score seed{s}/{loss}"] for s in (0, 1)
                                             for loss in ("ce", "logitnorm")),
        }[kind]  # fmt: skip
        assert _directive(script, "dependency") == wanted, name


def test_slurm_submits_each_job_after_the_ids_of_what_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through submitit's SlurmExecutor to a stand-in ``sbatch`` that records each script."""
    bin_dir, log = tmp_path / "bin", tmp_path / "submitted"
    bin_dir.mkdir()
    log.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\nn=$(( $(ls {log} | wc -l) + 101 ))\ncp "$1" {log}/$n\n'
        'echo "Submitted batch job $n"\n'
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), *STUDY, "--launcher", "slurm"]) == 0
    sent = {int(p.name): p.read_text() for p in log.iterdir()}
    assert sorted(sent) == list(range(101, 110))
    names = {n: _directive(s, "job-name") for n, s in sent.items()}
    by_name = {name: n for n, name in names.items()}
    assert _directive(sent[by_name["oodbench-score-seed1-ce"]], "dependency") == (
        f"afterok:{by_name['oodbench-train-seed1-ce']}"
    )
    assert _directive(sent[by_name["oodbench-report"]], "dependency").startswith("afterany:")


def test_a_run_scored_before_the_overconfidence_track_is_not_skipped(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench --resume asks ``scored`` whether a score job has work left; beside metrics.csv and
    summary.json (the shared run was scored without validation sets, so ``scored`` itself is
    False) it asks ``track_scored``: a run that lacks failure.csv or shift.csv (scored before
    issue 24), or the shifted sets' rows, is scored again, which adds only them
    (test_overconfidence: score fills in the missing failure rows of a scored run)."""
    from _cli import DETECTORS, OOD

    from oodbench.config import ScoreConfig
    from oodbench.runs import RunDir
    from oodbench.scoring import confidence

    cfg = ScoreConfig(run_dir=str(run), detectors=DETECTORS, ood=OOD, device="cpu")
    d, labels = RunDir(run), list(DETECTORS)
    assert jobs_mod.track_scored(d, cfg, labels)  # every row (no shifted sets in the tests)
    assert not jobs_mod.track_scored(d, cfg, [*labels, "knn"])  # a detector without rows
    for name in ("failure.csv", "shift.csv"):
        kept = (run / name).read_text()
        (run / name).unlink()  # as a run scored before the track
        assert not jobs_mod.track_scored(d, cfg, labels), name
        (run / name).write_text(kept)
    # with shifted sets: the mix's failure rows, their shift rows and fsood.csv are needed too
    monkeypatch.setattr(confidence, "shift_names", lambda id_name, size: ["fashion-mnist-blur-1"])
    assert not jobs_mod.track_scored(d, cfg, labels)
    assert jobs_mod.track_scored(d, replace(cfg, shift=False), labels)  # --no-shift
    (run / "failure.csv").write_text("")  # damaged: the usual one-line error
    with pytest.raises(UserError, match="failure.csv is not a readable CSV"):
        jobs_mod.track_scored(d, cfg, labels)
