"""Launchers beyond this process, through submitit (``pip install 'oodbench[cluster]'``).

``local``: the jobs run N at a time on this machine, each in its own process (submitit's
LocalExecutor), one per GPU with ``--devices cuda:0,cuda:1`` (each job sees only its GPU), else
in CPU slots that share the cores; the reports then render here. ``slurm``: every job that is
not done becomes a Slurm job, after the jobs it needs (``afterok``; a report ``afterany``, so
it renders what finished and lists the rest); ``--dry-run`` prints the sbatch scripts instead.
Either way a killed or failed job is run again by re-running the same command: finished jobs
are done-marked and skipped (oodbench.bench.jobs).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from oodbench.bench.jobs import Job, execute, is_done
from oodbench.config import check_choice
from oodbench.console import stderr
from oodbench.errors import UserError
from oodbench.runs import JOBS

LAUNCHERS = ("serial", "local", "slurm")
POLL_S = 0.5  # how often the local pool looks for finished jobs
LOCAL_TIMEOUT_MIN = 60 * 24 * 30  # submitit's local default (2 min) would kill any training


@dataclass(frozen=True)
class Launch:
    """Where ``bench`` runs its jobs (``--launcher`` and its options)."""

    launcher: str = "serial"
    jobs: int = 1  # local: jobs at a time in CPU slots
    devices: tuple[str, ...] = ()  # local: one job per GPU, cuda:0,cuda:1
    slurm_partition: str | None = None
    slurm_gpus_per_job: int = 1
    slurm_time: int = 240  # minutes, each job
    dry_run: bool = False  # slurm: print the sbatch scripts, submit nothing

    def __post_init__(self) -> None:
        check_choice("--launcher", self.launcher, LAUNCHERS)
        if self.jobs < 1 or self.slurm_gpus_per_job < 0 or self.slurm_time < 1:
            raise UserError("--jobs and --slurm-time need a positive number, "
                            "--slurm-gpus-per-job zero or more")  # fmt: skip
        for device in self.devices:
            if not re.fullmatch(r"cuda:\d+", device):
                raise UserError(f"--devices takes GPUs as cuda:0,cuda:1, not {device!r}")
        local = self.jobs > 1 or self.devices
        if local and self.launcher != "local":
            raise UserError("--jobs and --devices go with --launcher local")
        if self.devices and self.jobs > 1 and self.jobs != len(self.devices):
            raise UserError("--devices runs one job per GPU; drop --jobs or make it match")
        if self.dry_run and self.launcher != "slurm":
            raise UserError("--dry-run prints Slurm scripts: it goes with --launcher slurm")

    @property
    def slots(self) -> list[str | None]:
        """One entry per job running at once: its GPU, or None for a CPU slot."""
        return list(self.devices) or [None] * self.jobs


SERIAL = Launch()  # the default: every job in this process, one after another


def need_submitit() -> ModuleType:
    try:
        import submitit
    except ImportError as exc:
        raise UserError(
            "--launcher local and slurm run jobs through submitit, which is not installed: "
            "pip install 'oodbench[cluster]'"
        ) from exc
    return submitit


def run_local(jobs: list[Job], launch: Launch, quiet: bool) -> dict[str, str]:
    """Run every train and score job not yet done, ``len(launch.slots)`` at a time, each after
    the jobs it needs; return {key: why} of those that failed or could not start."""
    submitit = need_submitit()
    out = jobs[0].out
    executor = submitit.LocalExecutor(folder=out / JOBS / "local" / "%j")
    executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
    slots = launch.slots
    shared = os.environ.get("OMP_NUM_THREADS") is None and not launch.devices
    threads = max(1, (os.cpu_count() or 1) // len(slots)) if shared else None
    finished = {j.key for j in jobs if is_done(j)}
    pending = [j for j in jobs if j.kind != "report" and j.key not in finished]
    running: dict[int, tuple[Job, Any]] = {}
    failed: dict[str, str] = {}
    try:
        while pending or running:
            for slot, (job, handle) in list(running.items()):
                if handle.done():
                    del running[slot]
                    try:
                        handle.result()
                        finished.add(job.key)
                        stderr.print(f"[bold cyan]bench[/] done: {job.name}")
                    except Exception:  # noqa: BLE001 - its log says why; the rest go on
                        failed[job.key] = f"{job.name} failed (log: {handle.paths.stderr})"
            for job in [j for j in pending if any(k in failed for k in j.needs)]:
                pending.remove(job)
                failed[job.key] = f"{job.name} not run (a job it needs failed)"
            for slot in (s for s in range(len(slots)) if s not in running):
                ready = next((j for j in pending if set(j.needs) <= finished), None)
                if ready is None:
                    break
                pending.remove(ready)
                gpu = slots[slot]
                executor.update_parameters(gpus_per_node=1 if gpu else 0,
                                           visible_gpus=(int(gpu[5:]),) if gpu else ())  # fmt: skip
                stderr.print(f"[bold cyan]bench[/] start: {ready.name} on {gpu or 'CPU'}")
                running[slot] = (ready, executor.submit(execute, ready, quiet, threads))
            if not running:  # nothing runs and nothing can start: what is left waits in vain
                failed |= {j.key: f"{j.name} not run (a job it needs did not finish)"
                           for j in pending}  # fmt: skip
                break
            time.sleep(POLL_S)
    finally:  # Ctrl-C (or an error) here stops the running jobs too (SIGINT)
        for _, handle in running.values():
            handle.cancel(check=False)
    return failed


def slurm_parameters(job: Job, launch: Launch, ids: dict[str, str]) -> dict[str, Any]:
    """sbatch options of one job: partition, GPUs, time, its name and what it waits for."""
    after = [ids[k] for k in job.needs if k in ids]  # needs already done are not waited for
    kind = "afterany" if job.kind == "report" else "afterok"
    params: dict[str, Any] = {
        "job_name": "-".join(["oodbench", job.kind, *Path(job.where).parts]),  # "." has none
        "time": launch.slurm_time,
        "gpus_per_node": launch.slurm_gpus_per_job or None,
        "partition": launch.slurm_partition,
        "dependency": f"{kind}:{':'.join(after)}" if after else None,  # None: no directive
        # a failed train cancels its score jobs instead of leaving them pending forever
        "additional_parameters": {"kill-on-invalid-dep": "yes"},
    }
    return params


def run_slurm(jobs: list[Job], launch: Launch) -> list[str]:
    """Submit every job not yet done, after the jobs it needs; return their Slurm ids. With
    ``dry_run``, print the sbatch scripts (placeholder ids 1, 2, ... in submission order)."""
    need_submitit()
    from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

    todo = [j for j in jobs if not is_done(j)]
    folder = jobs[0].out / JOBS / "slurm" / "%j"
    ids: dict[str, str] = {}
    if launch.dry_run:
        command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit",
                            shlex.quote(str(folder))])  # what submitit's executor runs  # fmt: skip
        for i, job in enumerate(todo, 1):
            params = slurm_parameters(job, launch, ids)
            ids[job.key] = str(i)
            script = _make_sbatch_string(command=command, folder=folder, **params)
            print(f"# --- job {i}: {job.name} (key {job.key})\n{script}")
        return list(ids.values())
    try:
        executor = SlurmExecutor(folder=folder)
    except RuntimeError as exc:  # no srun on this machine
        raise UserError(f"{exc}; submit from a Slurm login node, or add --dry-run") from exc
    for job in todo:
        executor.update_parameters(**slurm_parameters(job, launch, ids))
        ids[job.key] = executor.submit(execute, job, True).job_id
        stderr.print(f"[bold cyan]bench[/] submitted {job.name}: Slurm job {ids[job.key]}")
    return list(ids.values())


def describe(failed: dict[str, str], out: Path) -> str:
    first = next(iter(failed.values()))
    return (f"{len(failed)} bench job(s) did not finish, e.g. {first}; the report lists what "
            f"is missing; re-run the same command to finish them (logs: {out / JOBS})")  # fmt: skip
