"""The Typer app and its root options. Commands register on it from ``commands``/``train``."""

from __future__ import annotations

from typing import Annotated

import typer

from oodbench import __version__

app = typer.Typer(
    name="oodbench",
    help="Benchmark out-of-distribution detection for image classifiers: training losses "
    "(CE, LogitNorm and its successors) x post-hoc detectors.",
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
