"""Printing helpers: rich tables to stdout, progress to stderr, and tables that fit the terminal.

A table wider than the terminal is never squeezed until rich truncates its headers (``Dete…``)
or folds its cells into a column of blank lines: ``split_columns`` packs the columns into
several tables, each repeating the first (row-label) column, each as wide as the terminal.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

stdout = Console()
stderr = Console(stderr=True)

# Each column costs its text plus one space of padding either side and one border line.
_COLUMN_OVERHEAD = 3


def header_width(header: str) -> int:
    """The narrowest a header can be without truncation: its longest word (headers wrap)."""
    return max((cell_len(word) for word in str(header).split()), default=1)


def column_width(header: str, cells: Sequence[Any]) -> int:
    """Width a column needs with unwrapped cells and a header wrapped at spaces."""
    texts = [c.plain if isinstance(c, Text) else str(c) for c in cells]
    longest = max((max(cell_len(line) for line in t.split("\n")) for t in texts), default=0)
    return max(header_width(header), longest)


def _word_width(header: str, cells: Sequence[Any]) -> int:
    """Width a wrapping column needs: its longest word."""
    texts = [c.plain if isinstance(c, Text) else str(c) for c in cells]
    return max([header_width(header), *(header_width(t) for t in texts if t.strip())])


def split_columns(widths: Sequence[int], width: int, keep: int = 1) -> list[list[int]]:
    """Indexes of the columns of each part: the first ``keep`` in every part, then as many of
    the rest, in order, as fit in ``width`` cells. A column too wide alone still gets a part."""
    fixed = list(range(min(keep, len(widths))))
    base = 1 + sum(widths[i] + _COLUMN_OVERHEAD for i in fixed)
    parts: list[list[int]] = []
    current: list[int] = []
    used = base
    for i in range(len(fixed), len(widths)):
        need = widths[i] + _COLUMN_OVERHEAD
        if current and used + need > width:
            parts.append(fixed + current)
            current, used = [], base
        current.append(i)
        used += need
    parts.append(fixed + current)
    return parts


def fitted_tables(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    width: int | None = None,
    *,
    caption: str | None = None,
    justify: Sequence[str] | None = None,
    wrap: Sequence[int] = (),
) -> list[Table]:
    """One rich table per part of ``split_columns``; numbered titles when there are several.

    Cells are ``str`` or ``rich.text.Text``. Columns listed in ``wrap`` may wrap their cells
    (long descriptions); the others never wrap, so a number is never cut in two.
    """
    width = width or stdout.width
    need = [
        _word_width(col, [r[i] for r in rows])
        if i in wrap
        else column_width(col, [r[i] for r in rows])
        for i, col in enumerate(columns)
    ]
    parts = split_columns(need, width)
    tables = []
    for n, part in enumerate(parts, 1):
        suffix = f" ({n}/{len(parts)})" if len(parts) > 1 and title else ""
        table = Table(
            title=(title + suffix) if title else None,
            caption=caption if n == len(parts) else None,
            caption_justify="left",
            header_style="bold",
        )
        for i in part:
            fixed = i not in wrap  # exact width: a header wraps at spaces, a cell never does
            header = "\n".join(textwrap.wrap(columns[i], need[i])) if fixed else columns[i]
            table.add_column(
                header,
                justify=(justify[i] if justify else "left"),  # type: ignore[arg-type]
                width=need[i] if fixed else None,
                no_wrap=fixed,
                min_width=need[i],
                overflow="fold",
            )
        for row in rows:
            table.add_row(*(row[i] if isinstance(row[i], Text) else str(row[i]) for i in part))
        tables.append(table)
    return tables


def make_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Group:
    """A titled table of plain values, split into parts when wider than the terminal."""
    return Group(*fitted_tables(title, columns, [[str(v) for v in r] for r in rows]))


def print_table(table: Table | Group) -> None:
    stdout.print(table)
