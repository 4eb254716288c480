"""Markdown tables of docs/results.md from a study folder written by scripts/study.sh.

    .venv/bin/python scripts/study_tables.py STUDY_OUT > tables.md

Prints: the tau sweep (validation columns chose, test columns shown to judge), and per track
and loss the ID accuracy over seeds with the last epochs of training (the plateau check), plus
the convergence check (the same recipe at twice the epochs) when it was run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.runs import RunDir
from oodbench.train import losses


def tau_table(out: Path) -> str:
    table = pd.read_csv(out / "tau" / "tau_sweep.csv")
    cols = ["loss", "tau", "val_acc", "val_msp_fpr95", "test_acc", "test_msp_fpr95",
            "test_msp_auroc", "selected"]  # fmt: skip
    lines = ["| loss | τ | val acc | val MSP FPR95 (chooses) | test acc | test MSP FPR95 | "
             "test MSP AUROC | chosen |", "|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for row in table[cols].itertuples(index=False):
        tau = "" if pd.isna(row.tau) else f"{row.tau:g}"
        lines.append(f"| {losses.title(row.loss)} | {tau} | {row.val_acc:.2f} | "
                     f"{row.val_msp_fpr95:.2f} | {row.test_acc:.2f} | {row.test_msp_fpr95:.2f} | "
                     f"{row.test_msp_auroc:.2f} | {'✓' if row.selected else ''} |")  # fmt: skip
    return "\n".join(lines)


def _history(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "history.csv")


def accuracy_table(folder: Path) -> str:
    """Per loss: final test accuracy (mean ± std over seeds) and its change over the last 3
    epochs (mean over seeds): how flat the end of training is."""
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for run_dir in sorted(folder.glob("seed*/*")):
        if not RunDir(run_dir).summary.is_file():
            continue
        hist = _history(run_dir)["test_acc"].to_numpy()
        loss = str(RunDir(run_dir).read_config()["loss"])
        acc = float(RunDir(run_dir).read_summary()["id_accuracy"])
        rows.setdefault(loss, []).append((acc, hist[-1] - hist[-4], hist[-1] - hist[-6]))
    lines = ["| loss | seeds | ID test accuracy | last 3 epochs | last 5 epochs |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for loss, vals in rows.items():
        a = np.array(vals)
        lines.append(f"| {losses.title(loss)} | {len(a)} | {a[:, 0].mean():.2f} ± "
                     f"{a[:, 0].std(ddof=1) if len(a) > 1 else 0:.2f} | {a[:, 1].mean():+.2f} | "
                     f"{a[:, 2].mean():+.2f} |")  # fmt: skip
    return "\n".join(lines)


def converge_table(out: Path) -> str | None:
    folder = out / "converge"
    if not folder.is_dir():
        return None
    lines = ["| loss | epochs | ID test accuracy | same seed at 15 epochs |",
             "|---|---:|---:|---:|"]  # fmt: skip
    for run_dir in sorted(p for p in folder.iterdir() if (p / "summary.json").is_file()):
        cfg = RunDir(run_dir).read_config()
        short = out / "main" / "far" / "seed0" / cfg["loss"]
        base = RunDir(short).read_summary().get("id_accuracy", float("nan"))
        acc = RunDir(run_dir).read_summary()["id_accuracy"]
        lines.append(f"| {losses.title(cfg['loss'])} | {cfg['epochs']} | {acc:.2f} | {base:.2f} |")
    return "\n".join(lines)


def main(out: Path) -> None:
    print("## tau sweep\n\n" + tau_table(out))
    for track in ("far", "near"):
        if (out / "main" / track).is_dir():
            print(f"\n## accuracy, {track} track\n\n" + accuracy_table(out / "main" / track))
    table = converge_table(out)
    if table:
        print("\n## convergence\n\n" + table)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
