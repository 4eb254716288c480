"""Choices of the bench on validation data only: tau, and the headline's best detector; the
tau table and the headline that show them.

Tau is chosen the paper's way, with validation OOD sets in place of the paper's Gaussian noise:
among the LogitNorm runs whose ID validation accuracy stays within ``ACC_TOLERANCE`` points of
CE's, the tau with the lowest MSP FPR95, averaged over the validation OOD sets (ID validation
split vs each set, from each run's summary.json). The test OOD sets play no part in either
choice: the table shows them beside the choice so it can be judged, with the test accuracy and
ECE (raw and after temperature scaling on the ID validation split) at every tau.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from oodbench import losses
from oodbench.config import loss_params_of
from oodbench.errors import UserError
from oodbench.io import atomic_write_text
from oodbench.runs import RunDir, bench_files, ood_means

ACC_TOLERANCE = 1.0  # percentage points of validation accuracy
SELECTION_DETECTOR = "msp"
SELECTION_METRIC = "fpr95"


def val_accuracy(run_dir: Path) -> float:
    """Validation accuracy (%) from summary.json, else from the cached validation logits."""
    summary = RunDir(run_dir).read_summary()
    if summary.get("val_accuracy") is not None:
        return float(summary["val_accuracy"])
    from oodbench.scoring.extract import read_outputs

    out = read_outputs(RunDir(run_dir).val_cache_files()[0])
    return float(100 * (out.logits.argmax(1) == out.labels).double().mean())


def validation(run_dir: Path, detector: str, metric: str = SELECTION_METRIC) -> float:
    """A detector's mean metric (%) over the run's validation OOD sets, from summary.json."""
    found = (RunDir(run_dir).read_summary().get("validation") or {}).get(detector)
    if not found:
        raise UserError(
            f"{run_dir} has no validation result for {detector}: score it with validation OOD "
            "sets (oodbench score --val-ood ..., as oodbench bench does)"
        )
    return float(found[metric])


def selection_table(run_dirs: list[Path]) -> pd.DataFrame:
    """What the tau choice reads, one row per run: loss, tau, validation accuracy and the
    validation MSP FPR95. Validation data only: no test set, no test metric."""
    rows = []
    for run_dir in run_dirs:
        train = RunDir(run_dir).config_values()
        rows.append({
            "run": run_dir.name,
            "loss": train["loss"],
            "tau": loss_params_of(train).get("tau") if train["loss"] == "logitnorm" else None,
            "val_acc": val_accuracy(run_dir),
            "val_msp_fpr95": validation(run_dir, SELECTION_DETECTOR),
        })  # fmt: skip
    return pd.DataFrame(rows)


def sweep_table(run_dirs: list[Path]) -> pd.DataFrame:
    """``selection_table`` plus the test columns (averages over the test OOD sets), to judge."""
    table = selection_table(run_dirs)
    tests = []
    for run_dir in run_dirs:
        run = RunDir(run_dir)
        test = ood_means(run.read_metrics(), "paper", "id-positive").reindex(
            [SELECTION_DETECTOR, "energy"]
        )
        summary = run.read_summary()
        tests.append({
            "test_acc": summary["id_accuracy"],
            # calibration at every tau (issue 24): LogitNorm's logit norm is about 1/tau
            "test_ece": summary.get("ece"),
            "test_ece_ts": summary.get("ece_ts"),
            "temperature": summary.get("temperature"),
            "test_msp_fpr95": float(test.loc[SELECTION_DETECTOR, "fpr95"]),
            "test_msp_auroc": float(test.loc[SELECTION_DETECTOR, "auroc"]),
            "test_energy_fpr95": float(test.loc["energy", "fpr95"]),
        })  # fmt: skip
    return pd.concat([table, pd.DataFrame(tests)], axis=1)


def choose_tau(table: pd.DataFrame) -> float | None:
    """The selected tau, or None when no LogitNorm run keeps its accuracy."""
    ce_acc = table.loc[table["loss"] == "ce", "val_acc"].mean()
    ok = table[(table["loss"] == "logitnorm") & (table["val_acc"] >= ce_acc - ACC_TOLERANCE)]
    if ok.empty:
        return None
    return float(ok.sort_values(["val_msp_fpr95", "tau"]).iloc[0]["tau"])


def best_on_validation(by_loss: dict[str, list[Path]], candidates: Iterable[str]) -> str:
    """The headline's best detector: the lowest validation FPR95 (mean over seeds) of any
    (loss, detector) among ``candidates``. Reads summary.json only."""
    best: tuple[float, str] | None = None
    for dirs in by_loss.values():
        for det in sorted(candidates):
            value = sum(validation(d, det) for d in dirs) / len(dirs)
            if best is None or value < best[0]:
                best = (value, det)
    if best is None:
        raise UserError("no detector was scored on every run; nothing to compare")
    return best[1]


HEADERS = {
    "loss": "loss",
    "tau": "τ",
    "val_acc": "val acc",
    "test_acc": "test acc",
    "val_msp_fpr95": "val MSP FPR95*",
    "test_msp_fpr95": "test MSP FPR95",
    "test_msp_auroc": "test MSP AUROC",
    "test_energy_fpr95": "test energy FPR95",
    "test_ece": "test ECE",
    "test_ece_ts": "test ECE (T-scaled)",
    "temperature": "T",
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


def write_tau_table(out: Path, run_dirs: list[Path]) -> Path:
    """The tau table: ``out/tau_sweep.csv`` and printed."""
    from rich.table import Table

    from oodbench.console import stdout

    chosen = choose_tau(selection_table(run_dirs))  # validation only, before any test column
    table = sweep_table(run_dirs)
    table["selected"] = table["tau"].eq(chosen) if chosen is not None else False
    _, _, out = bench_files(out)
    atomic_write_text(out, table.to_csv(index=False, float_format="%.2f"))
    val_sets = RunDir(run_dirs[0]).read_summary().get("val_ood") or []
    title = (f"tau sweep: chosen τ = {chosen} (lowest MSP FPR95 on the validation OOD sets "
             f"{', '.join(val_sets)}, among runs whose validation accuracy is within "
             f"{ACC_TOLERANCE:g} point of CE's); test columns average the test OOD sets, "
             "in %")  # fmt: skip
    view = Table(title=title, caption=f"* the selection score; the full table is in {out}")
    for col in HEADERS:
        view.add_column(HEADERS[col], justify="left" if col == "loss" else "right",
                        no_wrap=col == "loss")  # fmt: skip
    for _, row in table.iterrows():
        view.add_row(*(_cell(col, row[col]) for col in HEADERS))
    stdout.print(view)
    return out


# ------------------------------------------------------------------------- the headline


def _average(run_dir: Path) -> pd.DataFrame:
    return ood_means(RunDir(run_dir).read_metrics(), "paper", "id-positive")


def headline(run_dirs: list[Path]) -> dict[str, dict[str, float]]:
    """Per loss (mean over seeds): MSP and best-detector average FPR95/AUROC, and ID accuracy."""
    by_loss: dict[str, list[Path]] = {}
    for run_dir in run_dirs:  # the loss from config.json ("elogitnorm" contains "logitnorm")
        by_loss.setdefault(str(RunDir(run_dir).read_config().get("loss", "ce")), []).append(run_dir)
    avg = {loss: sum(_average(d) for d in dirs) / len(dirs) for loss, dirs in by_loss.items()}
    acc = {
        loss: sum(RunDir(d).read_summary()["id_accuracy"] for d in dirs) / len(dirs)
        for loss, dirs in by_loss.items()
    }
    # Picked on the validation OOD sets (summary.json), reported on the test sets.
    common = set.intersection(*(set(a.index) for a in avg.values()))
    best_det = best_on_validation(by_loss, common)
    return {
        loss: {
            "accuracy": acc[loss],
            "msp_fpr95": float(avg[loss].loc["msp", "fpr95"]),
            "msp_auroc": float(avg[loss].loc["msp", "auroc"]),
            "best_detector": best_det,  # type: ignore[dict-item]
            "best_fpr95": float(avg[loss].loc[best_det, "fpr95"]),
            "best_auroc": float(avg[loss].loc[best_det, "auroc"]),
        }
        for loss in avg
    }


def print_headline(run_dirs: list[Path]) -> None:
    from rich.panel import Panel
    from rich.table import Table

    from oodbench.console import stdout

    numbers = headline(run_dirs)
    best = next(iter(numbers.values()))["best_detector"]
    table = Table(show_header=True, header_style="bold", box=None)
    for col in ("", "ID acc", "MSP FPR95 ↓", "MSP AUROC ↑", f"{best} FPR95 ↓", f"{best} AUROC ↑"):
        table.add_column(col, justify="right")
    for loss, n in numbers.items():
        label = losses.title(loss)
        table.add_row(label, *(f"{n[k]:.2f}" for k in ("accuracy", "msp_fpr95", "msp_auroc",
                                                          "best_fpr95", "best_auroc")))  # fmt: skip
    title = "oodbench headline: averages over the OOD sets (paper protocol, ID positive, %)"
    stdout.print(Panel(table, title=title, expand=False))
