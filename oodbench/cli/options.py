"""Option types shared by several commands, and the parsers of comma-separated lists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oodbench.errors import UserError

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


def _floats(text: str | None, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",")) if text else ()
    except ValueError:
        raise UserError(
            f"{flag} takes comma-separated numbers, e.g. 0.01,0.04; got {text!r}"
        ) from None


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:  # "1.5" must not silently become seed 1
        raise UserError(
            f"{flag} takes comma-separated whole numbers, e.g. 0,1,2; got {text!r}"
        ) from None
