"""``oodbench train``: options in, a TrainConfig out, the loop called once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from oodbench.cli.options import Download, Precision, Quiet, Root, RunsDir


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
        float | None,
        typer.Option(
            help="tau of the chosen loss: LogitNorm's logit temperature \\[default: 0.04], "
            "T2FNorm's feature temperature \\[default: 0.1]; a --preset's tau is LogitNorm's."
        ),
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
        str | None,
        typer.Option(
            help="paper-cifar10, paper-cifar100 (the paper's recipe), or an offline "
            "setting: icons-wrn16, icons-wrn40, alnum-wrn16, icons-cnn, alnum-cnn "
            "(docs/training.md)."
        ),
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
    """Train a model with any registered loss (ce, logitnorm, t2fnorm, ...) on any timm backbone."""
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
