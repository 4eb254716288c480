"""The overconfidence section of docs/results.md from the committed CSVs (issue 24).

    .venv/bin/python scripts/overconfidence_tables.py docs/study/overconfidence docs/results.md

Reads ``far.overconfidence.csv``, ``far.failure.csv``, ``far.shift.csv`` and ``far.fsood.csv``
(written by ``oodbench report RUNS -f csv --out DIR/far.csv``, see scripts/overconfidence.sh)
and replaces the text between the two markers of RESULTS.md with their tables, so the numbers
in the page are always the committed CSVs' (rerun after the CSVs change).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

BEGIN, END = "<!-- overconfidence:begin -->", "<!-- overconfidence:end -->"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
            *(_row(r) for r in rows)]  # fmt: skip


def _f(x: float, digits: int = 2, sign: bool = False) -> str:
    return "—" if not np.isfinite(x) else f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def overconfidence(frame: pd.DataFrame) -> list[str]:
    groups = list(dict.fromkeys(frame["group"]))
    base = groups[0]
    header = ["Measure", *groups[:1], *(c for g in groups[1:] for c in (g, f"Δ vs {base}"))]
    rows = []
    for measure, sub in frame.groupby("measure", sort=False):
        arrow = {True: " ↓", False: " ↑"}.get(sub["lower_is_better"].iloc[0], "")
        digits = 3 if measure == "temperature" else 2
        by = sub.set_index("group")
        cells = [f"{by['label'].iloc[0]}{arrow}", _f(by.loc[base, "value"], digits)]
        for g in groups[1:]:
            cells += [_f(by.loc[g, "value"], digits), _f(by.loc[g, "delta"], digits, sign=True)]
        rows.append(cells)
    return _table(header, rows)


def failure(frame: pd.DataFrame) -> list[str]:
    ids = frame[~frame["dataset"].str.endswith("-shifted-mix")]
    groups = list(dict.fromkeys(ids["group"]))
    header = ["Detector", *(f"{g} {m}" for g in groups for m in ("AURC↓", "AUGRC↓", "AUROC↑"))]
    rows = []
    for det, sub in ids.groupby("detector", sort=False):
        by = sub.set_index("group")
        rows.append([det, *(_f(by.loc[g, m]) if g in by.index else "—"
                            for g in groups for m in ("aurc", "augrc", "auroc"))])  # fmt: skip
    return _table(header, rows)


def shift(frame: pd.DataFrame) -> list[str]:
    groups = list(dict.fromkeys(frame["group"]))
    header = ["Severity", *(f"{g} {m}" for g in groups for m in ("acc↑", "ECE↓", "ECE-TS↓"))]
    means = frame.groupby(["severity", "group"])[["accuracy", "ece", "ece_ts"]].mean()
    rows = []
    for sev in sorted(set(frame["severity"])):
        rows.append([str(sev), *(_f(means.loc[(sev, g), m]) for g in groups
                                 for m in ("accuracy", "ece", "ece_ts"))])  # fmt: skip
    return _table(header, rows)


def section(folder: Path) -> str:
    lines = [BEGIN, ""]
    lines += ["Per loss (seed 0; Δ = loss − CE, one seed: no interval, nothing marked "
              f"significant), from `{folder}/far.overconfidence.csv`:", ""]  # fmt: skip
    lines += overconfidence(pd.read_csv(folder / "far.overconfidence.csv"))
    lines += ["", f"Failure detection on the ID test set, per detector (`{folder}/far.failure.csv`"
              "; intervals there):", ""]  # fmt: skip
    lines += failure(pd.read_csv(folder / "far.failure.csv"))
    lines += ["", f"Accuracy and calibration by severity, mean over corruptions "
              f"(`{folder}/far.shift.csv`; severity 0 is the clean test set):", ""]  # fmt: skip
    lines += shift(pd.read_csv(folder / "far.shift.csv"))
    return "\n".join([*lines, "", END])


def main(folder: Path, page: Path) -> None:
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{page} has no {BEGIN} ... {END} block to fill")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    page.write_text(head + section(folder) + tail)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
