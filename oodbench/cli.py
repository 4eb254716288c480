"""The ``oodbench`` command line: parse arguments, call one function per command, print.

No logic lives here. Every backend raises ``UserError`` for bad input, which ``main`` turns
into one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from oodbench import __version__
from oodbench.errors import FAULT_ERRNOS, FAULT_EXIT, EnvironmentFault, UserError, fault_from

app = typer.Typer(
    name="oodbench",
    help="Benchmark out-of-distribution detection for image classifiers (CE vs LogitNorm).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"oodbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """oodbench: train CE / LogitNorm models, score OOD detectors, report against the paper."""


RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Folder holding run directories.")]
Root = Annotated[
    Path | None, typer.Option("--root", help="Folder with dataset files (download/folder sets).")
]
Download = Annotated[
    bool, typer.Option("--download", help="Allow downloading datasets (needs network).")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Precision = Annotated[str, typer.Option(help="fp32, bf16 (autocast), or auto: bf16 on CUDA only.")]
ValOod = Annotated[
    list[str] | None,
    typer.Option(help="Validation OOD set, or noise / real / noise+real (repeatable)."),
]
Params = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        metavar="DETECTOR.NAME=VALUE",
        help="A detector hyperparameter, e.g. knn.k=200 (repeatable; see 'oodbench detectors').",
    ),
]


@app.command()
def datasets(root: Root = None) -> None:
    """List every registered dataset, and whether it is available on this machine now."""
    from oodbench.console import print_table
    from oodbench.data.listing import datasets_table

    print_table(datasets_table(root))


@app.command()
def detectors() -> None:
    """List every registered post-hoc detector with its inputs, hyperparameters and paper."""
    from oodbench.console import print_table
    from oodbench.detectors import detectors_table

    print_table(detectors_table())


@app.command()
def train(
    dataset: Annotated[
        str | None, typer.Option(help="ID training set \\[default: fashion-mnist].")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Any timm model or small_cnn, wrn_40_2, resnet18_cifar \\[default: small_cnn]."
        ),
    ] = None,
    loss: Annotated[
        str | None,
        typer.Option(help="A registered loss (ce, logitnorm, ...) \\[default: ce]."),
    ] = None,
    tau: Annotated[
        float | None, typer.Option(help="LogitNorm temperature \\[default: 0.04].")
    ] = None,
    penalty: Annotated[
        float | None, typer.Option(help="Lambda of logit-penalty \\[default: 0.1].")
    ] = None,
    loss_param: Annotated[
        list[str] | None,
        typer.Option(
            "--loss-param",
            metavar="NAME=VALUE",
            help="A parameter of the chosen loss, e.g. tau=0.04 (repeatable).",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs in total \\[default: 5].")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Global batch size \\[default: 128].")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate \\[default: 0.1].")] = None,
    schedule: Annotated[
        str | None, typer.Option(help="cosine or multistep \\[default: cosine].")
    ] = None,
    warmup_epochs: Annotated[
        int | None, typer.Option(help="Linear warm-up epochs \\[default: 0].")
    ] = None,
    nesterov: Annotated[
        bool | None,
        typer.Option("--nesterov/--no-nesterov", help="Nesterov momentum \\[default: on]."),
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="Weight decay \\[default: 5e-4].")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of init, split and augmentation \\[default: 0].")
    ] = None,
    subset: Annotated[
        int | None, typer.Option(help="Train on the first N training images (smoke runs).")
    ] = None,
    val_size: Annotated[
        int | None, typer.Option(help="Held-out validation images \\[default: 5000].")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda \\[default: auto].")] = None,
    compile: Annotated[
        bool | None, typer.Option("--compile", help="torch.compile the model.")
    ] = None,
    precision: Precision = "auto",
    preset: Annotated[
        str | None, typer.Option(help="paper-cifar10 or paper-cifar100: the paper's recipe.")
    ] = None,
    runs_dir: RunsDir = Path("runs"),
    name: Annotated[
        str | None, typer.Option(help="Run name \\[default: from dataset, model, loss, tau].")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run from its last checkpoint.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing run dir.")
    ] = False,
    root: Root = None,
    download: Download = False,
    quiet: Quiet = False,
) -> None:
    """Train a CE, LogitNorm or logit-penalty model on any timm backbone."""
    from oodbench.train.loop import TrainingInterrupted
    from oodbench.train.loop import train as run_training
    from oodbench.train.options import build_config

    options = dict(
        dataset=dataset,
        model=model,
        loss=loss,
        tau=tau,
        penalty=penalty,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        schedule=schedule,
        warmup_epochs=warmup_epochs,
        nesterov=nesterov,
        weight_decay=weight_decay,
        seed=seed,
        subset=subset,
        val_size=val_size,
        device=device,
        compile=compile,
        precision=None if precision == "auto" else precision,  # --resume keeps the saved one
        download=download or None,
        root=str(root) if root else None,
    )
    cfg = build_config(options, preset, resume, runs_dir, name, loss_param or ())
    try:
        run_dir = run_training(cfg, runs_dir, name, resume=resume, overwrite=overwrite, quiet=quiet)
    except TrainingInterrupted as exc:
        print(f"interrupted: checkpoint saved in {exc.run_dir}; continue with:", file=sys.stderr)
        print(f"  {exc.resume_command}", file=sys.stderr)
        raise typer.Exit(130) from None
    typer.echo(str(run_dir))


@app.command()
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
    runs_dir: RunsDir = Path("runs"),
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 512,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Precision = "fp32",
    root: Root = None,
    download: Download = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", "--force", help="Recompute rows already scored.")
    ] = False,
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
    )  # fmt: skip
    result = score_run(cfg, quiet=quiet)
    if result.rank:  # torchrun: only rank 0 reports
        return
    if len(result):
        print_table(rows_table(result.rows, f"{result.run_dir}: new metrics rows (percent)"))
    else:
        typer.echo(f"{result.run_dir}: every row is already in {METRICS} "
                   "(use --overwrite to recompute)", err=True)  # fmt: skip


@app.command()
def report(
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(help="Scored run dirs (or folders of runs); default: all under --runs-dir."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="rich (colour), markdown, csv or json.")
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
    )
    if out is not None:
        typer.echo(f"wrote {out}", err=True)
    elif fmt != "rich":
        typer.echo(text, nl=False)


def _floats(text: str | None, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",")) if text else ()
    except ValueError:
        raise UserError(
            f"{flag} takes comma-separated numbers, e.g. 0.01,0.04; got {text!r}"
        ) from None

@app.command("import")
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



def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:  # "1.5" must not silently become seed 1
        raise UserError(
            f"{flag} takes comma-separated whole numbers, e.g. 0,1,2; got {text!r}"
        ) from None


@app.command()
def bench(
    preset: Annotated[
        str, typer.Option(help="offline (Fashion-MNIST, CPU), paper-cifar10 or paper-cifar100.")
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
    tracks: Annotated[
        str, typer.Option(help="far, near (held-out classes), or far,near.")
    ] = "far",
    detector: Annotated[
        list[str] | None, typer.Option("--detector", "-d", help="Detectors (default: all).")
    ] = None,
    param: Params = None,
    ood: Annotated[list[str] | None, typer.Option(help="OOD sets (default: preset's).")] = None,
    tune: Annotated[
        bool, typer.Option("--tune/--no-tune", help="Tune detectors on validation data.")
    ] = True,
    val_ood: ValOod = None,
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
    quiet: Quiet = False,
) -> None:
    """Run the whole benchmark: train CE and LogitNorm, score every detector, write a report."""
    from oodbench.bench.runner import run_bench
    from oodbench.config import BenchConfig

    seed_list = _ints(seeds, "--seeds") if seeds else (seed,)
    cfg = BenchConfig(
        preset=preset, out=str(out), epochs=epochs, tau=tau, seeds=seed_list,
        tau_sweep=_floats(tau_sweep, "--tau-sweep"), detectors=tuple(detector or ("all",)),
        ood=tuple(ood or ()), subset=subset, val_size=val_size, device=device,
        root=str(root) if root else None, download=download, resume=resume, overwrite=overwrite,
        params=tuple(param or ()), tune=tune, val_ood=tuple(val_ood or ()), precision=precision,
        losses=tuple(x.strip() for x in (losses or "").split(",") if x.strip()),
        tracks=tuple(x.strip() for x in tracks.split(",") if x.strip()),
    )  # fmt: skip
    run_bench(cfg, quiet=quiet)


def _os_error(exc: OSError) -> str:
    import urllib.error

    if isinstance(exc, urllib.error.URLError):
        return (f"download failed ({exc.reason}); check the network, or put the files in a "
                "folder and pass it as --root")  # fmt: skip
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}; check that path"


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors with exit 2 for every bad input, never a traceback."""
    try:
        # click returns (not raises) the code of a typer.Exit when standalone_mode is off
        code = app(args=argv, prog_name="oodbench", standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A full disk, a quota, a read-only or unwritable place: the machine, exit 3 (see
        # docs/reliability.md). A path that is a file where a folder is needed, no network:
        # bad input, exit 2. Either way one line instead of a traceback.
        fault = fault_from(exc, action="use") if exc.errno in FAULT_ERRNOS else None
        if isinstance(exc, EnvironmentFault) or fault is not None:
            print(f"error: {fault or exc}", file=sys.stderr)
            return FAULT_EXIT
        print(f"error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort) as exc:
        if isinstance(exc, typer.Abort | click.exceptions.Abort):
            print("aborted", file=sys.stderr)
            return 130
        return int(getattr(exc, "exit_code", 0) or 0)
    except Exception as exc:
        # Usage errors (unknown option, bad value, no such command) from click or from the copy
        # of click that newer typer releases vendor: both carry format_message and exit_code.
        if not hasattr(exc, "format_message"):
            raise
        print(f"error: {exc.format_message()} (see 'oodbench --help')", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


def run() -> None:
    sys.exit(main())
