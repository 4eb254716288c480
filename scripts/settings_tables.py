"""Section 5 of docs/results.md, tau per setting, from the committed sweep tables (issue 26).

    .venv/bin/python scripts/settings_tables.py docs/study/settings docs/results.md

Reads ``<setting>/tau_sweep.csv`` (written by ``oodbench bench --tau-sweep``, see
scripts/settings_sweep.sh) for every setting folder and replaces the text between the two
markers of RESULTS.md with one table per setting, so the page always shows the committed CSVs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
COLUMNS = [  # (CSV column, header)
    ("val_acc", "val acc"),
    ("val_msp_fpr95", "val MSP FPR95 (selects)"),
    ("test_acc", "test acc"),
    ("test_ece", "test ECE"),
    ("test_ece_ts", "test ECE (T)"),
    ("test_msp_fpr95", "test MSP FPR95"),
    ("test_msp_auroc", "test MSP AUROC"),
]


def _f(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x:.2f}"


def sweep_table(table: pd.DataFrame) -> list[str]:
    header = ["loss", "τ", *(h for _, h in COLUMNS), "within 1 pt of CE", "chosen"]
    ce_acc = float(table.loc[table["loss"] == "ce", "val_acc"].iloc[0])
    align = [":---", "---:", *["---:"] * len(COLUMNS), ":---:", ":---:"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for rec in table.to_dict("records"):
        ce = rec["loss"] == "ce"
        eligible = "" if ce else ("yes" if rec["val_acc"] >= ce_acc - 1.0 else "no")
        cells = ["CE" if ce else "LogitNorm", "-" if ce else f"{rec['tau']:g}",
                 *(_f(float(rec[c])) for c, _ in COLUMNS), eligible,
                 "✓" if bool(rec["selected"]) else ""]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(folder: Path, results: Path) -> None:
    out: list[str] = []
    for path in sorted(folder.glob("*/tau_sweep.csv")):
        table = pd.read_csv(path)
        chosen = table.loc[table["selected"].astype(bool), "tau"]
        verdict = f"τ = {chosen.iloc[0]:g} chosen" if len(chosen) else "no τ eligible"
        out += [f"**{path.parent.name}** (`{path}`): {verdict}.", "", *sweep_table(table), ""]
    text = results.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    results.write_text(head + BEGIN + "\n" + "\n".join(out) + END + tail)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
