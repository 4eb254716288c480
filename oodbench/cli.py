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
from oodbench.errors import UserError

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


@app.command()
def datasets(root: Root = None) -> None:
    """List every registered dataset, and whether it is available on this machine now."""
    from oodbench.console import print_table
    from oodbench.data.listing import datasets_table

    print_table(datasets_table(root))


@app.command()
def detectors() -> None:
    """List every registered post-hoc detector with its inputs, defaults and paper."""
    from oodbench.console import print_table
    from oodbench.detectors import detectors_table

    print_table(detectors_table())


def _coming(command: str, issue: str) -> None:
    raise UserError(f"'oodbench {command}' is coming ({issue}); it is not built yet")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(ctx: typer.Context) -> None:
    """Train a CE, LogitNorm or logit-penalty model on any timm backbone."""
    _coming("train", "training issue")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def score(ctx: typer.Context) -> None:
    """Score post-hoc detectors on a run's cached logits and features."""
    _coming("score", "scoring issue")


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


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Run the whole benchmark: train CE and LogitNorm, score every detector, write a report."""
    _coming("bench", "bench issue")


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors with exit 2 for every bad input, never a traceback."""
    try:
        app(args=argv, prog_name="oodbench", standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
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
    return 0


def run() -> None:
    sys.exit(main())
