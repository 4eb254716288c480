"""Paired CE -> LogitNorm differences per detector over the seeds of a multi-seed bench.

    .venv/bin/python scripts/summarize_seeds.py runs/converged

Reads runs/converged/seed*/{ce,logitnorm}/metrics.csv (paper protocol, ID positive), averages
each run over its OOD sets, and prints, per detector, mean ± std over seeds of CE, LogitNorm and
the paired difference, plus how many seeds LogitNorm won. Output is a markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from oodbench.runs import RunDir, ood_means


def run_averages(run_dir: Path) -> pd.DataFrame:
    return ood_means(RunDir(run_dir).read_metrics(), "paper", "id-positive")


def main(bench: Path) -> None:
    seeds = sorted(bench.glob("seed*"))
    ce = pd.concat({s.name: run_averages(s / "ce") for s in seeds})
    ln = pd.concat({s.name: run_averages(s / "logitnorm") for s in seeds})
    diff = ln - ce
    acc = {
        loss: [RunDir(s / loss).read_summary()["id_accuracy"] for s in seeds]
        for loss in ("ce", "logitnorm")
    }
    print(f"{len(seeds)} seeds; ID accuracy CE {pd.Series(acc['ce']).mean():.2f} ± "
          f"{pd.Series(acc['ce']).std():.2f}, LogitNorm {pd.Series(acc['logitnorm']).mean():.2f}"
          f" ± {pd.Series(acc['logitnorm']).std():.2f}\n")  # fmt: skip
    print("| detector | CE FPR95 | LN FPR95 | Δ FPR95 (paired) | LN wins | CE AUROC | LN AUROC "
          "| Δ AUROC (paired) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")

    def ms(frame: pd.DataFrame, det: str, col: str) -> str:
        values = frame.xs(det, level=1)[col]
        sign = "+" if frame is diff else ""
        return f"{values.mean():{sign}.2f} ± {values.std():.2f}"

    for det in sorted(ce.index.get_level_values(1).unique()):
        wins = int((diff.xs(det, level=1)["fpr95"] < 0).sum())
        print(f"| {det} | {ms(ce, det, 'fpr95')} | {ms(ln, det, 'fpr95')} | "
              f"{ms(diff, det, 'fpr95')} | {wins}/{len(seeds)} | {ms(ce, det, 'auroc')} | "
              f"{ms(ln, det, 'auroc')} | {ms(diff, det, 'auroc')} |")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/converged"))
