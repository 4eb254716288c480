"""Markdown tables of docs/results.md from a study folder written by scripts/study.sh.

    .venv/bin/python scripts/study_tables.py STUDY_OUT [REPORT.matrix.csv ...] > tables.md
    .venv/bin/python scripts/study_tables.py --plot STUDY_OUT convergence.png

Prints: the tau sweep (validation columns chose, test columns shown to judge), and per track
and loss the ID accuracy over seeds with the last epochs of training (the plateau check), plus
the convergence check (the same recipe at twice the epochs) when it was run; then, per
matrix CSV written by ``oodbench report -f csv``, the changes against CE, tuned and at the
papers' defaults.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from oodbench import losses
from oodbench.detectors.base import TUNED
from oodbench.runs import RunDir


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
    lines = ["| loss | epochs | ID test accuracy | last 5 epochs | the study's run (seed 0) | "
             "its epochs |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for run_dir in sorted(p for p in folder.iterdir() if (p / "summary.json").is_file()):
        cfg = RunDir(run_dir).read_config()
        short = RunDir(out / "main" / "far" / "seed0" / cfg["loss"])
        base = short.read_summary().get("id_accuracy", float("nan"))
        acc = RunDir(run_dir).read_summary()["id_accuracy"]
        hist = _history(run_dir)["test_acc"].to_numpy()
        epochs = short.read_config()["epochs"]
        lines.append(f"| {losses.title(cfg['loss'])} | {cfg['epochs']} | {acc:.2f} | "
                     f"{hist[-1] - hist[-6]:+.2f} | {base:.2f} | {epochs} |")  # fmt: skip
    return "\n".join(lines)


def setting_view(matrix: pd.DataFrame, tuned: bool) -> pd.DataFrame:
    """One row per (loss, detector) of one setting's family: the tuned rows where the detector
    has a grid (tuned=True) or the papers' defaults (tuned=False); detectors without a grid
    appear in both (a matrix CSV's ``setting`` column says which family a row belongs to)."""
    if "setting" in matrix.columns:
        view = matrix[matrix.setting == ("tuned" if tuned else "defaults")].copy()
    else:  # a matrix CSV written before the families (issue 23)
        has_tuned = set(matrix.loc[matrix.detector.str.endswith(TUNED), "detector"]
                        .str[: -len(TUNED)])  # fmt: skip
        keep = ~matrix.detector.isin(has_tuned) if tuned else ~matrix.detector.str.endswith(TUNED)
        view = matrix[keep].copy()
    view["name"] = view.detector.str.replace(TUNED, "", regex=False)
    if "coincides_with" in view.columns:
        view["coincides_with"] = view.coincides_with.fillna("").str.replace(TUNED, "", regex=False)
    else:
        view["coincides_with"] = ""
    return view


def _signed(view: pd.DataFrame, metric: str, worse_if: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    sig = view[view[f"{metric}_significant"].fillna(False).astype(bool)]
    up = sig[f"{metric}_delta"] > 0
    worse = sig[up] if worse_if == "up" else sig[~up]
    better = sig[~up] if worse_if == "up" else sig[up]
    return worse, better


def _delta(row: dict | pd.Series, metric: str, digits: int) -> str:
    """The change against CE, ``*`` when significant (Holm-adjusted p < 0.05)."""
    return f"{row[f'{metric}_delta']:+.{digits}f}{'*' if row[f'{metric}_significant'] else ''}"


def _once(part: pd.DataFrame) -> int:
    """Distinct tests among ``part``'s detectors: a coinciding detector counts once."""
    return part.coincides_with.where(part.coincides_with != "", part.name).nunique()


def _listed(rows: pd.DataFrame, metric: str) -> str:
    """Significant changes, largest first; coinciding detectors share one entry (``react =
    vra``, with the first one's change)."""
    rows = rows.assign(key=rows.coincides_with.where(rows.coincides_with != "", rows.name))
    rows = rows.sort_values(f"{metric}_delta", key=abs, ascending=False)
    out = [f"{' = '.join(part.name)} {part[f'{metric}_delta'].iloc[0]:+.1f}"
           for _, part in rows.groupby("key", sort=False)]  # fmt: skip
    return ", ".join(out) or "none"


def matrix_summary(path: Path, tuned: bool) -> str:
    """Per loss against CE: MSP's change, how many detectors get worse or better (and how many
    significantly: Holm-adjusted p < 0.05 within the loss's family), and the significant ones.
    A detector that coincides with another on the loss's runs (the same test) counts once."""
    view = setting_view(pd.read_csv(path), tuned)
    lines = ["| loss | ΔMSP FPR95 | ΔMSP AUROC | FPR95 worse (sig.) | FPR95 better (sig.) | "
             "AUROC lower (sig.) | AUROC higher (sig.) | significant ΔFPR95 | "
             "significant ΔAUROC |", "|---|---:|---:|---:|---:|---:|---:|---|---|"]  # fmt: skip
    for loss, part in view.groupby("loss", sort=False):
        if loss == "ce":
            continue
        n = _once(part)
        msp = part[part.name == "msp"].iloc[0]
        worse, better = _signed(part, "fpr95", "up")
        lower, higher = _signed(part, "auroc", "down")
        lines.append(
            f"| {part.group.iloc[0]} | {_delta(msp, 'fpr95', 2)} | {_delta(msp, 'auroc', 2)} | "
            f"{_once(part[part.fpr95_delta > 0])} of {n} ({_once(worse)}) | "
            f"{_once(part[part.fpr95_delta < 0])} ({_once(better)}) | "
            f"{_once(part[part.auroc_delta < 0])} of {n} ({_once(lower)}) | "
            f"{_once(part[part.auroc_delta > 0])} ({_once(higher)}) | "
            f"{_sig_text(worse, better, 'fpr95')} | {_sig_text(higher, lower, 'auroc')} |"
        )
    return "\n".join(lines)


def _sig_text(good: pd.DataFrame, bad: pd.DataFrame, metric: str) -> str:
    """``worse: ...; better: ...`` for FPR95, ``higher: ...; lower: ...`` for AUROC."""
    words = ("worse", "better") if metric == "fpr95" else ("higher", "lower")
    return "; ".join(
        f"{w}: {_listed(rows, metric)}" for w, rows in zip(words, (good, bad), strict=True)
    )


def convergence_plot(out: Path, path: Path) -> None:
    """Test accuracy per epoch: each loss's far-OOD runs (mean over seeds, band = min..max)
    and the convergence check's longer runs, dashed. Test accuracy is watched here, never used
    to choose anything."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colors: dict[str, str] = {}
    for loss_dir in sorted({p.name for p in (out / "main" / "far").glob("seed*/*")}):
        runs = [_history(p) for p in sorted((out / "main" / "far").glob(f"seed*/{loss_dir}"))]
        acc = np.stack([h["test_acc"].to_numpy() for h in runs])
        epochs = runs[0]["epoch"].to_numpy()
        (line,) = ax.plot(
            epochs, acc.mean(0), label=f"{losses.title(loss_dir)} ({len(runs)} seeds)"
        )
        ax.fill_between(epochs, acc.min(0), acc.max(0), color=line.get_color(), alpha=0.2)
        colors[loss_dir] = line.get_color()
    for run_dir in sorted((out / "converge").glob("*")) if (out / "converge").is_dir() else []:
        if (run_dir / "history.csv").is_file():
            h, loss = _history(run_dir), str(RunDir(run_dir).read_config()["loss"])
            ax.plot(h["epoch"], h["test_acc"], "--", color=colors.get(loss),
                    label=f"{losses.title(loss)}, {len(h)} epochs (seed 0)")  # fmt: skip
    ax.set(xlabel="epoch", ylabel="ID test accuracy (%)", ylim=(84, None),
           title="Accuracy per epoch (cosine schedule ends at each run's last epoch)")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def detector_table(path: Path, tuned: bool, metric: str) -> str:
    """Every detector (rows) by loss (columns): the metric's mean over seeds and, against CE,
    its paired change (``*`` significant)."""
    view = setting_view(pd.read_csv(path), tuned)
    groups = list(dict.fromkeys(view.group))
    cells: dict[str, dict[str, str]] = {}
    for r in view.to_dict("records"):
        delta = r[f"{metric}_delta"]
        text = f"{r[metric]:.2f}"
        if not pd.isna(delta):
            text += f" ({_delta(r, metric, 1)})"
        cells.setdefault(r["name"], {})[r["group"]] = text
    lines = ["| detector | " + " | ".join(groups) + " |", "|---|" + "---:|" * len(groups)]
    for name in sorted(cells):
        lines.append(f"| {name} | " + " | ".join(cells[name].get(g, "") for g in groups) + " |")
    return "\n".join(lines)


def main(out: Path, matrices: list[Path]) -> None:
    if (out / "tau" / "tau_sweep.csv").is_file():
        print("## tau sweep\n\n" + tau_table(out))
    for track in ("far", "near"):
        if (out / "main" / track).is_dir():
            print(f"\n## accuracy, {track} track\n\n" + accuracy_table(out / "main" / track))
    table = converge_table(out)
    if table:
        print("\n## convergence\n\n" + table)
    for path in matrices:
        for tuned in (True, False):
            setting = "tuned" if tuned else "papers' defaults"
            print(f"\n## {path.name}, {setting}\n\n" + matrix_summary(path, tuned))
            for metric in ("fpr95", "auroc"):
                print(f"\n### {metric}\n\n" + detector_table(path, tuned, metric))


def write_matrix(report_csv: Path) -> Path:
    """X.matrix.csv from a report's X.csv: the matrix with its families' p, Holm p and BH q."""
    from oodbench.io import atomic_write_text
    from oodbench.report.matrix import matrix_from_csv

    out = report_csv.with_suffix(".matrix.csv")
    frame = matrix_from_csv(pd.read_csv(report_csv))
    atomic_write_text(out, frame.to_csv(index=False, float_format="%.4f", lineterminator="\n"))
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--matrix":  # study_tables.py --matrix docs/study/far.csv ...
        for arg in sys.argv[2:]:
            print(write_matrix(Path(arg)))
    elif sys.argv[1] == "--plot":  # study_tables.py --plot STUDY_OUT OUT.png
        convergence_plot(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
