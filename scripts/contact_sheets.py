"""Write docs/img/datasets/<name>.png, a contact sheet of each offline dataset, and
<id>-c.png, one test image of each ID set here under every corruption and severity.

Run: .venv/bin/python scripts/contact_sheets.py [out_dir]
"""

from __future__ import annotations

import sys
from pathlib import Path

from oodbench.data import DATASETS, OFFLINE_OOD, load
from oodbench.data.contact import class_sheet, contact_sheet, corruption_sheet

# The test image each shifted-track sheet shows (index in the ID test split).
SHIFTED_SHEETS = {"fashion-mnist": 0, "cifar10": 0}


def main(out: Path) -> None:
    for name in ("fashion-mnist", *OFFLINE_OOD):
        data = load(name, "test")
        path = contact_sheet(data, out / f"{name}.png")
        print(f"{name}: {len(data)} images {tuple(data.images.shape[1:])} -> {path}")
    for name, per_class, scale in (("icons-ctx8", 16, 2), ("alnum-fonts", 16, 1)):
        data = load(name, "train")
        path = class_sheet(data, out / f"{name}-classes.png", per_class, scale=scale)
        print(f"{name}: {data.num_classes} classes x {per_class} -> {path}")
    for name, index in SHIFTED_SHEETS.items():
        if DATASETS.get(name).available(None):
            path = corruption_sheet(load(name, "test"), out / f"{name}-c.png", index)
            print(f"{name}-c: test image {index} under every corruption and severity -> {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img/datasets"))
