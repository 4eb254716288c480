"""Every command but ``train``: list, score, report, import, bench. One backend call each;
``oodbench.cli`` registers them on the app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oodbench.cli.options import (
    Download,
    Params,
    Precision,
    Quiet,
    Root,
    RunsDir,
    ValOod,
    _floats,
    _ints,
)
from oodbench.config import SHIFT_SIZE


def datasets(root: Root = None) -> None:
    """List every registered dataset, and whether it is available on this machine now."""
    from oodbench.console import print_table
    from oodbench.data.listing import datasets_table

    print_table(datasets_table(root))


def detectors() -> None:
    """List every registered post-hoc detector with its inputs, hyperparameters and paper."""
    from oodbench.console import print_table
    from oodbench.detectors import detectors_table

    print_table(detectors_table())


def score(
    run_dir: Annotated[
        Path | None, typer.Argument(help="Run dir (default: the newest run under --runs-dir).")
    ] = None,
    detector: Annotated[
        list[str] | None,
        typer.Option("--detector", "-d", help="Detector name, or 'all' (repeatable)."),
    ] = None,
    ood: Annotated[
        list[str] | None,
        typer.Option(help="OOD set or 'all-offline' (repeatable; default: every one available)."),
    ] = None,
    protocol: Annotated[
        str, typer.Option(help="full (every OOD sample) or paper (|ID|/5, 10 draws).")
    ] = "full",
    positive: Annotated[
        str, typer.Option(help="Positive class for FPR95: id (the paper) or ood (OpenOOD).")
    ] = "id",
    k: Annotated[int | None, typer.Option("--k", help="knn: neighbour rank (default 50).")] = None,
    temperature: Annotated[
        float | None, typer.Option(help="T of energy / odin / gradnorm (default: each paper's).")
    ] = None,
    param: Params = None,
    tune: Annotated[
        bool, typer.Option("--tune", help="Tune detectors on validation data.")
    ] = False,
    val_ood: ValOod = None,
    head: Annotated[
        str,
        typer.Option(
            help="inference: the head the loss scores with (T2FNorm: W/tau, so logits "
            "fc(h/tau)); raw: the trained head as it is. Recorded in each row."
        ),
    ] = "inference",
    runs_dir: RunsDir = Path("runs"),
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 512,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Precision = "fp32",
    root: Root = None,
    download: Download = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", "--force", help="Recompute rows already scored.")
    ] = False,
    allow_data_change: Annotated[
        bool,
        typer.Option(
            "--allow-data-change",
            help="Score although the ID data differs from training's (recorded).",
        ),
    ] = False,  # fmt: skip
    shift: Annotated[
        bool, typer.Option("--shift/--no-shift", help="Score the covariate-shifted ID sets.")
    ] = True,
    shift_size: Annotated[
        int,
        typer.Option(help="Test images per covariate-shifted set, a seeded sample (0: all)."),
    ] = SHIFT_SIZE,
    quiet: Quiet = False,
) -> None:
    """Score post-hoc detectors on a run's cached logits and features."""
    from oodbench.config import ScoreConfig
    from oodbench.console import print_table
    from oodbench.runs import METRICS
    from oodbench.scoring.run import rows_table, score_run

    cfg = ScoreConfig(
        run_dir=str(run_dir) if run_dir else None, runs_dir=str(runs_dir),
        detectors=tuple(detector or ("energy",)), ood=tuple(ood or ()), protocol=protocol,
        positive=positive, k=k, temperature=temperature, batch_size=batch_size, device=device,
        root=str(root) if root else None, download=download, overwrite=overwrite,
        params=tuple(param or ()), tune=tune, val_ood=tuple(val_ood or ()), precision=precision,
        head=head,
        allow_data_change=allow_data_change,
        shift=shift,
        shift_size=shift_size,
    )  # fmt: skip
    result = score_run(cfg, quiet=quiet)
    if result.rank:  # torchrun: only rank 0 reports
        return
    if len(result):
        print_table(rows_table(result.rows, f"{result.run_dir}: new metrics rows (percent)"))
    else:
        typer.echo(f"{result.run_dir}: every row is already in {METRICS} "
                   "(use --overwrite to recompute)", err=True)  # fmt: skip


def report(
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(help="Scored run dirs (or folders of runs); default: all under --runs-dir."),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="rich (colour), markdown, csv, json, html, or openood (a folder "
            "of CSVs in OpenOOD v1.5's layout).",
        ),
    ] = "rich",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file.")] = None,
    plots: Annotated[Path | None, typer.Option("--plots", help="Write PNG plots here.")] = None,
    reference: Annotated[
        Path | None, typer.Option("--reference", help="CSV of extra/overriding published rows.")
    ] = None,
    detector: Annotated[
        list[str] | None, typer.Option("--detector", "-d", help="Only these detectors.")
    ] = None,
    ood: Annotated[list[str] | None, typer.Option("--ood", help="Only these OOD sets.")] = None,
    convention: Annotated[
        str | None, typer.Option("--convention", help="id-positive or ood-positive rows only.")
    ] = None,
    protocol: Annotated[
        str | None, typer.Option("--protocol", help="paper or full rows only.")
    ] = None,
    plot_detector: Annotated[
        str, typer.Option("--plot-detector", help="Detector for histograms and ROC curves.")
    ] = "msp",
    image_bootstrap: Annotated[
        int,
        typer.Option(
            "--image-bootstrap",
            min=0,
            help="Resamples of the two-level paired bootstrap (seeds, then test images) of "
            "each change against CE in the loss x detector matrix; 0 skips it.",
        ),
    ] = 200,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Render tables and plots from scored run directories, beside the paper's numbers."""
    from oodbench.report import render

    text = render(
        run_dirs or [],
        fmt,
        out=out,
        plots=plots,
        reference=reference,
        detectors=detector,
        oods=ood,
        runs_dir=runs_dir,
        convention=convention,
        protocol=protocol,
        plot_detector=plot_detector,
        image_bootstrap=image_bootstrap,
    )
    if fmt == "openood":
        typer.echo(text, nl=False, err=True)
    elif out is not None:
        typer.echo(f"wrote {out}", err=True)
    elif fmt != "rich":
        typer.echo(text, nl=False)


def import_(
    weights: Annotated[Path, typer.Argument(help="A .safetensors file or a PyTorch state dict.")],
    model: Annotated[str, typer.Option(help="Any timm model name, or small_cnn, wrn_40_2, ...")],
    dataset: Annotated[str, typer.Option(help="Its ID set: a dataset name or folder:PATH.")],
    name: Annotated[str | None, typer.Option(help="Run name (default: <stem>-imported).")] = None,
    loss: Annotated[str, typer.Option(help="What it was trained with (a label).")] = "imported",
    runs_dir: RunsDir = Path("runs"), root: Root = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run dir.")] = False,
) -> None:  # fmt: skip
    """Make a run dir from a checkpoint trained elsewhere, ready for score and report."""
    from oodbench.train.importing import ImportRequest, import_checkpoint

    where = str(root) if root else None
    req = ImportRequest(weights, model, dataset, name, runs_dir, loss, where, overwrite)
    typer.echo(str(import_checkpoint(req)))


def bench(
    preset: Annotated[
        str,
        typer.Option(
            help="offline (Fashion-MNIST, CPU), paper-cifar10, paper-cifar100, icons-wrn16, "
            "icons-wrn40, alnum-wrn16, icons-cnn or alnum-cnn. Several, comma-separated: one "
            "setting each under "
            "--out/<preset> and a combined report; the other options apply to every setting."
        ),
    ] = "offline",
    out: Annotated[Path, typer.Option(help="Folder for the runs and the report.")] = Path(
        "runs/bench"
    ),
    epochs: Annotated[int | None, typer.Option(help="Epochs per run (default: preset's).")] = None,
    tau: Annotated[float | None, typer.Option(help="LogitNorm tau (default: preset's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the CE/LogitNorm pair.")] = 0,
    seeds: Annotated[
        str | None, typer.Option(help="Comma-separated seeds; repeats the pair per seed.")
    ] = None,
    tau_sweep: Annotated[
        str | None, typer.Option(help="Comma-separated taus: one LogitNorm run per tau.")
    ] = None,
    losses: Annotated[
        str | None, typer.Option(help="Comma-separated losses, a run each (default: ce,logitnorm).")
    ] = None,
    tracks: Annotated[str, typer.Option(help="far, near (held-out classes), or far,near.")] = "far",
    detector: Annotated[
        list[str] | None, typer.Option("--detector", "-d", help="Detectors (default: all).")
    ] = None,
    param: Params = None,
    ood: Annotated[list[str] | None, typer.Option(help="OOD sets (default: preset's).")] = None,
    tune: Annotated[
        bool, typer.Option("--tune/--no-tune", help="Tune detectors on validation data.")
    ] = True,
    val_ood: ValOod = None,
    shift: Annotated[
        bool, typer.Option("--shift/--no-shift", help="Score the covariate-shifted ID sets.")
    ] = True,
    shift_size: Annotated[
        int,
        typer.Option(help="Test images per covariate-shifted set, a seeded sample (0: all)."),
    ] = SHIFT_SIZE,
    subset: Annotated[int | None, typer.Option(help="Train on the first N images.")] = None,
    val_size: Annotated[
        int | None, typer.Option(help="Images held out for validation \\[default: preset's].")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Precision = "auto",
    root: Root = None,
    download: Download = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted bench.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Start again, replacing earlier runs.")] = False,
    launcher: Annotated[
        str, typer.Option(help="serial (here), local (a pool of jobs) or slurm (docs/scaling.md).")
    ] = "serial",
    jobs: Annotated[int, typer.Option(help="local: jobs at a time, in CPU slots.")] = 1,
    devices: Annotated[
        str | None, typer.Option(help="local: one job per GPU, e.g. cuda:0,cuda:1.")
    ] = None,
    slurm_partition: Annotated[str | None, typer.Option(help="slurm: the partition.")] = None,
    slurm_gpus_per_job: Annotated[int, typer.Option(help="slurm: GPUs of each job.")] = 1,
    slurm_time: Annotated[int, typer.Option(help="slurm: time limit of each job, minutes.")] = 240,
    dry_run: Annotated[
        bool, typer.Option(help="slurm: print the sbatch scripts, submit nothing.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Run the whole benchmark: train each loss (default CE, LogitNorm), score, report.
    --preset a,b runs several settings as one resumable bench; the options given apply to
    every setting."""
    from oodbench.bench.launch import Launch
    from oodbench.bench.runner import run_bench
    from oodbench.bench.settings import setting_configs

    seed_list = _ints(seeds, "--seeds") if seeds else (seed,)
    cfgs = setting_configs(
        preset, out=str(out), epochs=epochs, tau=tau, seeds=seed_list,
        tau_sweep=_floats(tau_sweep, "--tau-sweep"), detectors=tuple(detector or ("all",)),
        ood=tuple(ood or ()), subset=subset, val_size=val_size, device=device,
        root=str(root) if root else None, download=download, resume=resume, overwrite=overwrite,
        params=tuple(param or ()), tune=tune, val_ood=tuple(val_ood or ()), precision=precision,
        losses=tuple(x.strip() for x in (losses or "").split(",") if x.strip()),
        tracks=tuple(x.strip() for x in tracks.split(",") if x.strip()), shift=shift,
        shift_size=shift_size,
    )  # fmt: skip
    devs = tuple(x.strip() for x in (devices or "").split(",") if x.strip())
    launch = Launch(launcher, jobs, devs, slurm_partition, slurm_gpus_per_job, slurm_time, dry_run)
    run_bench(cfgs, quiet=quiet, launch=launch, out=out)
