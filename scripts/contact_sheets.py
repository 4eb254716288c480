"""Write docs/img/datasets/<name>.png, a contact sheet of each offline dataset.

Run: .venv/bin/python scripts/contact_sheets.py [out_dir]
"""

from __future__ import annotations

import sys
from pathlib import Path

from oodbench.data import OFFLINE_OOD, load
from oodbench.data.contact import contact_sheet


def main(out: Path) -> None:
    for name in ("fashion-mnist", *OFFLINE_OOD):
        data = load(name, "test")
        path = contact_sheet(data, out / f"{name}.png")
        print(f"{name}: {len(data)} images {tuple(data.images.shape[1:])} -> {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img/datasets"))
