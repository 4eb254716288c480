"""The ``oodbench`` command line: parse arguments, call one function per command, print.

No logic lives here. Every backend raises ``UserError`` for bad input, which ``main`` turns
into one line on stderr and exit code 2; a fault of the machine (full disk, read-only place)
exits 3. ``app`` (app.py) holds the Typer app; ``train`` and ``commands`` register on it.
"""

from __future__ import annotations

import sys

import click
import typer

from oodbench import provenance
from oodbench.cli import commands, train
from oodbench.cli.app import app
from oodbench.errors import FAULT_ERRNOS, FAULT_EXIT, EnvironmentFault, UserError, fault_from

__all__ = ["app", "main", "run"]

# Registered here, in the order `oodbench --help` lists them.
for _name, _command in (("datasets", commands.datasets), ("detectors", commands.detectors),
                        ("train", train.train), ("score", commands.score),
                        ("report", commands.report), ("import", commands.import_),
                        ("bench", commands.bench)):  # fmt: skip
    app.command(_name)(_command)


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
        with provenance.invoked_as(sys.argv[1:] if argv is None else list(argv)):
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
