"""The table behind ``oodbench datasets``: every registered set and whether it is here now."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from oodbench.data import DATASETS
from oodbench.data.registry import KINDS, DatasetSpec


def is_available(spec: DatasetSpec, root: Path | None) -> bool:
    try:
        return bool(spec.available(root))
    except OSError:  # an unreadable --root means "not available", not a crash
        return False


def datasets_table(root: Path | str | None = None) -> Table:
    """Columns: name, kind, geometry, classes, use, available, source; offline sets first."""
    root = Path(root).expanduser() if root else None
    table = Table(title="oodbench datasets" + (f" (--root {root})" if root else ""))
    for column in ("name", "kind", "geometry", "classes", "use", "available", "source"):
        # Names and flags stay whole; the long descriptive columns wrap.
        short = column in ("name", "kind", "classes", "available")
        table.add_column(column, no_wrap=short, overflow="fold", min_width=None if short else 9)
    specs = sorted(
        (spec for _, spec in DATASETS.items()),
        key=lambda s: (KINDS.index(s.kind), s.role != "id", s.name),
    )
    for spec in specs:
        here = is_available(spec, root)
        table.add_row(
            spec.name,
            spec.kind,
            spec.geometry,
            str(spec.num_classes) if spec.num_classes else "-",
            "ID or OOD" if spec.role == "id" else "OOD",
            "[green]yes[/green]" if here else "[red]no[/red]",
            spec.source,
        )
    return table
