"""The table behind ``oodbench datasets``: every registered set and whether it is here now."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.text import Text

from oodbench.console import fitted_tables
from oodbench.data import DATASETS
from oodbench.data.corruptions import CORRUPTIONS
from oodbench.data.registry import KINDS, DatasetSpec
from oodbench.data.sources.shifted import SUFFIX


def is_available(spec: DatasetSpec, root: Path | None) -> bool:
    try:
        return bool(spec.available(root))
    except OSError:  # an unreadable --root means "not available", not a crash
        return False


def shifted_row(corruption: str) -> str:
    """The listing's name for a corruption's shifted sets, whatever the ID set."""
    return f"<id>{SUFFIX}:{corruption}:1-5"


def datasets_table(root: Path | str | None = None, width: int | None = None) -> Group:
    """Two tables that each fit ``width`` (default: the terminal): what each set is (name, kind,
    geometry, classes, use, here) and where it comes from (name, size, source). Offline sets
    first."""
    root = Path(root).expanduser() if root else None
    specs = sorted(
        (spec for _, spec in DATASETS.items()),
        key=lambda s: (KINDS.index(s.kind), s.role != "id", s.name),
    )
    facts, sources = [], []
    for spec in specs:
        here = is_available(spec, root)
        facts.append([
            spec.name,
            spec.kind,
            spec.geometry,
            str(spec.num_classes) if spec.num_classes else "-",
            "ID, or OOD test" if spec.role == "id" else f"OOD {spec.ood_role}",
            Text("yes", style="green") if here else Text("no", style="red"),
        ])  # fmt: skip
        sources.append([spec.name, spec.size or "-", spec.source])
    for corruption in CORRUPTIONS.values():  # the shifted track: a row per corruption
        name = Text(shifted_row(corruption.name))  # Text: ":fog:" is not an emoji code
        facts.append([name, "shifted", "ID's", "ID's", "ID under shift", "with ID"])
        sources.append([name, "ID's", f"ID test split, CIFAR-10-C's severities; {corruption.how}"])
    title = "oodbench datasets" + (f" (--root {root})" if root else "")
    columns = ["name", "kind", "geometry", "classes", "use", "here"]
    note = (
        "Also: folder:PATH, an image folder (PATH/train/<class>/, PATH/test/<class>/ for ID). "
        f"Shifted sets: <id>{SUFFIX}:CORRUPTION:SEVERITY (severity 1..5), e.g. "
        f"fashion-mnist{SUFFIX}:contrast:3, the ID test images corrupted, labels kept."
    )
    return Group(
        *fitted_tables(title, columns, facts, width, wrap=(2,), caption=note),
        *fitted_tables(
            "where each dataset comes from", ["name", "size", "source"], sources, width, wrap=(2,)
        ),  # fmt: skip
    )
