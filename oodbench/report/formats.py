"""Turn a built report (report.spec) into rich tables, GitHub markdown, tidy CSV or JSON text."""

from __future__ import annotations

import difflib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console, Group
from rich.text import Text

from oodbench.errors import UserError
from oodbench.report.spec import Cell, Report, TableSpec

# html: report/html.py; openood: a folder of CSVs in OpenOOD v1.5's layout (report/openood.py)
FORMATS = ("rich", "markdown", "csv", "json", "html", "openood")
CSV_COLUMNS = (
    "run", "label", "loss", "tau", "model", "id_dataset", "seed", "detector", "ood_dataset",
    "protocol", "convention", "fpr95", "auroc", "aupr", "aupr_in", "aupr_out", "fpr95_std",
    "auroc_std", "aupr_std", "n_id", "n_ood", "ref_fpr95", "ref_auroc", "ref_aupr", "ref_source",
    "fpr95_lo", "fpr95_hi", "auroc_lo", "auroc_hi", "aupr_lo", "aupr_hi", "aupr_in_lo",
    "aupr_in_hi", "aupr_out_lo", "aupr_out_hi", "n_boot", "track",
)  # fmt: skip
# interval columns come last: readers of the earlier columns by position still work
INTERVALS_TEXT = (
    "<m>_lo/<m>_hi: 95% interval in percent. rows: percentile bootstrap over test samples "
    "(n_boot stratified resamples, seeded by the row's key). cells: that interval with one seed "
    "(ci_over 'bootstrap'), the t-interval of the mean over seeds with several ('seeds'); "
    "Average cells: mean of the sets' bounds. comparison: <m>_delta_lo/_hi, the paired "
    "t-interval over seeds of LogitNorm − CE (NaN with one seed, n_pairs < 2); <m>_significant "
    "is true only when it excludes 0"
)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        close = difflib.get_close_matches(fmt, FORMATS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UserError(f"unknown --format {fmt!r}; {hint}choose one of {', '.join(FORMATS)}")
    return fmt


# --- markdown ---------------------------------------------------------------------------


def _md_cell(cell: Cell) -> str:
    text = cell.text.replace("|", "\\|")
    return f"**{text}**" if cell.best and text != "—" else text


def markdown_table(spec: TableSpec, heading: bool = True) -> str:
    lines = [f"### {spec.title}", ""] if heading else []
    lines += [f"{note}  " for note in spec.notes]
    if spec.notes:
        lines.append("")
    lines.append("| " + " | ".join(spec.columns) + " |")
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(spec.columns) - 1)) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in spec.rows]
    return "\n".join(lines) + "\n"


def to_markdown(report: Report, link_base: Path) -> str:
    out = ["# OOD detection report", ""]
    out += [f"- {line}" for line in report.header]
    out.append("")
    for section, specs in report.sections:
        out += [f"## {section}", ""]
        out += [markdown_table(spec, heading=spec.title != section) for spec in specs]
    if report.plots:
        out += ["## Plots", ""]
        for title, path in report.plots:
            rel = Path(os.path.relpath(path, link_base)).as_posix()
            out += [f"### {title}", "", f"![{title}]({rel})", ""]
    if report.references:
        out += ["## References", ""]
        out += [f"- **{src}**: {note}" for src, note in report.references]
        out.append("")
    if report.produced is not None:
        out += _markdown_produced(report.produced)
    return "\n".join(out)


def _markdown_produced(made: Any) -> list[str]:
    from oodbench.report import produced as P

    out = [f"## {P.TITLE}", "", *(f"{line}  " for line in P.lines(made)), ""]
    out += ["```sh", *made.commands, "```", ""]
    return out + [markdown_table(spec) for spec in P.tables(made)]


# --- rich -------------------------------------------------------------------------------


def _rich_cell(cell: Cell) -> Text:
    style = "bold green" if cell.best else {"good": "green", "bad": "red"}.get(cell.tone or "", "")
    return Text(cell.text, style=style)


def rich_table(spec: TableSpec, heading: bool = True, width: int | None = None) -> Group:
    """The table as one or more rich tables, each fitting ``width`` (default: the terminal):
    columns that do not fit go to a continuation table that repeats the row labels."""
    from oodbench.console import fitted_tables

    caption = "\n".join(spec.notes) if spec.notes else None
    justify = ["left"] + ["right"] * (len(spec.columns) - 1)
    rows = [[_rich_cell(c) for c in row] for row in spec.rows]
    title = spec.title if heading else None
    return Group(*fitted_tables(title, spec.columns, rows, width, caption=caption,
                                justify=justify))  # fmt: skip


def rich_renderable(report: Report, width: int | None = None) -> Group:
    parts: list[Any] = [Text("OOD detection report", style="bold underline")]
    parts += [Text(f"• {line}") for line in report.header]
    for section, specs in report.sections:
        parts.append(Text(f"\n{section}", style="bold cyan"))
        parts += [rich_table(spec, spec.title != section, width) for spec in specs]
    if report.plots:
        parts.append(Text("\nPlots", style="bold cyan"))
        parts += [Text(f"{title}: {path}") for title, path in report.plots]
    if report.references:
        parts.append(Text("\nReferences", style="bold cyan"))
        parts += [Text(f"[{src}] {note}") for src, note in report.references]
    return Group(*parts)


def to_plain_text(report: Report, width: int = 160) -> str:
    """The rich report without colour, for --out FILE."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, soft_wrap=False).print(
        rich_renderable(report, width)
    )
    return buffer.getvalue()


# --- csv / json -------------------------------------------------------------------------


def to_csv(report: Report) -> str:
    frame = report.tidy.reindex(columns=list(CSV_COLUMNS))
    return frame.to_csv(index=False, float_format="%.4f", lineterminator="\n")


def matrix_csv(report: Report) -> str | None:
    """The loss x detector matrix as CSV (one row per loss and detector), if the report has one."""
    if report.matrix is None:
        return None
    return report.matrix.frame.to_csv(index=False, float_format="%.4f", lineterminator="\n")


def confidence_tables(report: Report) -> dict[str, pd.DataFrame]:
    """The overconfidence track's tables (issue 24): the Overconfidence summary and every
    run's failure, shift and full-spectrum OOD rows; empty frames when the runs have none."""
    conf = report.confidence
    found = {"overconfidence": report.overconfidence}
    if conf is not None:
        found |= {"failure": conf.failure, "shift": conf.shift, "fsood": conf.fsood}
    return {k: (v if v is not None else pd.DataFrame()) for k, v in found.items()}


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    clean = frame.astype(object).where(pd.notna(frame), None)
    return [{k: _plain(v) for k, v in row.items()} for row in clean.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def to_json(report: Report) -> str:
    doc = {
        "protocol": report.protocol,
        "convention": report.convention,
        "units": "percent",
        "aupr": "AUPR of the positive class (AUPR-In if id-positive, AUPR-Out if ood-positive)",
        "intervals": INTERVALS_TEXT,
        "groups": report.groups_json(),
        "cells": _records(report.cells),
        "comparison": _records(report.comparison),
        "matrix": _records(report.matrix.frame if report.matrix is not None else None),
        "paper_changes": _records(report.changes),
        **{k: _records(v) for k, v in confidence_tables(report).items()},
        "rows": _records(report.tidy),
        "references": [{"source": s, "note": n} for s, n in report.references],
        "plots": [{"title": t, "path": str(p)} for t, p in report.plots],
        "how_produced": report.produced.to_json() if report.produced is not None else None,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
