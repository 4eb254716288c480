"""Choosing tau the paper's way: Gaussian noise as the validation OOD set.

Among the LogitNorm runs whose ID validation accuracy stays within ``ACC_TOLERANCE`` points of
CE's, pick the tau with the lowest MSP FPR95 on ``gaussian``. The test OOD sets play no part in
the choice; the table shows them (averaged without ``gaussian``) so the choice can be judged.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from oodbench.config import BenchConfig, loss_params_of
from oodbench.errors import UserError
from oodbench.io import atomic_write_text
from oodbench.runs import RunDir, bench_files, ood_means
from oodbench.train import losses

ACC_TOLERANCE = 1.0  # percentage points of validation accuracy
SELECTION_SET = "gaussian"
SELECTION_DETECTOR = "msp"


def val_accuracy(run_dir: Path) -> float:
    """Validation accuracy (%) from summary.json, else from the cached validation logits."""
    summary = RunDir(run_dir).read_summary()
    if summary.get("val_accuracy") is not None:
        return float(summary["val_accuracy"])
    from oodbench.scoring.extract import read_outputs

    cached = RunDir(run_dir).val_cache_files()  # runs scored before summary.json recorded it
    if not cached:
        raise UserError(
            f"{run_dir} records no validation accuracy and its cache is gone; rescore it: "
            f"'oodbench score {run_dir} --overwrite'"
        )
    out = read_outputs(cached[0])
    return float(100 * (out.logits.argmax(1) == out.labels).double().mean())


def sweep_table(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per run: tau, accuracies, the selection score and the test-set averages."""
    rows = []
    for run_dir in run_dirs:
        run = RunDir(run_dir)
        train = run.config_values()
        m = run.read_metrics()
        dets = [SELECTION_DETECTOR, "energy"]
        test = ood_means(m, "paper", "id-positive", exclude=[SELECTION_SET]).reindex(dets)
        selection = ood_means(m, "paper", "id-positive", only=[SELECTION_SET]).reindex(dets)
        rows.append({
            "run": run_dir.name,
            "loss": train["loss"],
            "tau": loss_params_of(train).get("tau") if train["loss"] == "logitnorm" else None,
            "val_acc": val_accuracy(run_dir),
            "test_acc": run.read_summary()["id_accuracy"],
            "gaussian_msp_fpr95": float(selection.loc[SELECTION_DETECTOR, "fpr95"]),
            "test_msp_fpr95": float(test.loc[SELECTION_DETECTOR, "fpr95"]),
            "test_msp_auroc": float(test.loc[SELECTION_DETECTOR, "auroc"]),
            "test_energy_fpr95": float(test.loc["energy", "fpr95"]),
        })  # fmt: skip
    return pd.DataFrame(rows)


def choose_tau(table: pd.DataFrame) -> float | None:
    """The selected tau, or None when no LogitNorm run keeps its accuracy."""
    ce_acc = table.loc[table["loss"] == "ce", "val_acc"].mean()
    ok = table[(table["loss"] == "logitnorm") & (table["val_acc"] >= ce_acc - ACC_TOLERANCE)]
    if ok.empty:
        return None
    return float(ok.sort_values(["gaussian_msp_fpr95", "tau"]).iloc[0]["tau"])


HEADERS = {
    "loss": "loss",
    "tau": "τ",
    "val_acc": "val acc",
    "test_acc": "test acc",
    "gaussian_msp_fpr95": "gaussian MSP FPR95*",
    "test_msp_fpr95": "test MSP FPR95",
    "test_msp_auroc": "test MSP AUROC",
    "test_energy_fpr95": "test energy FPR95",
    "selected": "chosen",
}


def _cell(column: str, value: object) -> str:
    if column == "loss":
        return losses.title(str(value))
    if column == "selected":
        return "[bold green]✓[/]" if value else ""
    if isinstance(value, float):
        return "-" if pd.isna(value) else f"{value:.2f}"
    return str(value)


def write_tau_table(cfg: BenchConfig, run_dirs: list[Path]) -> Path:
    from rich.table import Table

    from oodbench.console import stdout

    table = sweep_table(run_dirs)
    chosen = choose_tau(table)
    table["selected"] = table["tau"].eq(chosen) if chosen is not None else False
    _, _, out = bench_files(cfg.out)
    atomic_write_text(out, table.to_csv(index=False, float_format="%.2f"))
    title = (f"tau sweep: chosen τ = {chosen} (lowest MSP FPR95 on {SELECTION_SET}, among runs "
             f"whose validation accuracy is within {ACC_TOLERANCE:g} point of CE's); test columns "
             f"average the OOD sets other than {SELECTION_SET}, in %")  # fmt: skip
    view = Table(title=title, caption=f"* the selection score; the full table is in {out}")
    for col in HEADERS:
        view.add_column(HEADERS[col], justify="left" if col == "loss" else "right",
                        no_wrap=col == "loss")  # fmt: skip
    for _, row in table.iterrows():
        view.add_row(*(_cell(col, row[col]) for col in HEADERS))
    stdout.print(view)
    return out
