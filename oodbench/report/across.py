"""The combined report of a bench over several settings (``bench --preset a,b``).

``--out/report.md``: a summary across the settings (per setting, track and loss: ID accuracy,
and MSP's and energy's test FPR95 and AUROC averaged over the setting's test OOD sets, with the
change against CE paired by seed) and, per setting, its loss x detector value tables and ID
accuracy (report.matrix: the same numbers and Holm families as the setting's own report, which
it links to).
``--out/settings.csv`` holds the summary's numbers, raw p and Holm p included;
``--out/plots/settings_msp_auroc.png`` shows MSP's AUROC per setting and loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import oodbench.report.matrix as M
import oodbench.report.tables as T
from oodbench import losses
from oodbench.detectors.base import TUNED
from oodbench.errors import UserError
from oodbench.io import atomic_write_text
from oodbench.report.formats import markdown_table, rich_table
from oodbench.report.load import load_runs
from oodbench.report.spec import Cell, TableSpec
from oodbench.report.stats import STAR_TEXT
from oodbench.runs import ACROSS, PLOTS, REPORT, RunDir

# The summary's detectors (base name -> column title); each setting's tables have every one.
DETECTORS = {"msp": "MSP", "energy": "Energy"}
NOTES = [
    "Per setting, track and loss: mean over seeds of the test metric averaged over the "
    "setting's test OOD sets (those all its runs share), in %. (Δ …) = loss − CE in points, "
    f"paired by seed; {STAR_TEXT} (every detector of one loss vs CE, one metric, one track, "
    "one setting, as in the setting's own report; it needs two seeds or more).",
    "A detector with a grid is reported as tuned on validation data (energy[tuned]); each "
    f"setting's own options and runs are in its folder's {REPORT}.",
]


def write_across(out: Path, folders: tuple[str, ...], runs: tuple[tuple[str, ...], ...]) -> Path:
    """Render ``out/report.md`` and ``out/settings.csv`` from the runs scored so far."""
    from oodbench.console import stdout

    sections, rows, missing = [], [], []
    for folder, wheres in zip(folders, runs, strict=True):
        done = [out / w for w in wheres if RunDir(out / w).is_scored]
        missing += [f"- `{w}`" for w in wheres if out / w not in done]
        if done:
            mx, oods = _matrix(done)
            rows += summary_rows(folder, mx)
            sections.append(_section(folder, mx, oods))
    if not rows:
        raise UserError(f"nothing to report in {out} yet: no run is scored; re-run the same "
                        "bench command to finish its jobs")  # fmt: skip
    frame = pd.DataFrame(rows)
    summary = summary_table(frame)
    text = [f"# oodbench: {len(folders)} settings\n", markdown_table(summary)]
    plot = _plot(frame, out / PLOTS / "settings_msp_auroc.png")
    if plot is not None:
        text.append(f"![MSP AUROC per setting and loss]({PLOTS}/{plot.name})")
    text += sections
    if missing:
        text.append("## Not finished\n\nThese runs are not scored yet:\n\n" + "\n".join(missing))
    atomic_write_text(out / ACROSS, frame.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(out / REPORT, "\n\n".join(t.rstrip() for t in text) + "\n")
    stdout.print(rich_table(summary))
    return out / REPORT


def _matrix(run_dirs: list[Path]) -> tuple[M.Matrix, list[str]]:
    """The setting's loss x detector matrix (as its report builds it) and its test OOD sets."""
    runs, frame = load_runs(run_dirs)
    frame = T.add_aupr(T.select(frame))
    T.check_one_convention(frame)
    groups = T.make_groups([r for r in runs if str(r.path) in set(frame["run"])])
    return M.loss_matrix(frame, groups), sorted(set(frame["ood_dataset"]))


def setting_name(folder: str) -> tuple[str, str]:
    """``icons-wrn16/near`` -> ("icons-wrn16", "near"); a setting with one track: far."""
    name, _, track = folder.partition("/")
    return name, track or "far"


def _label(mx: M.Matrix, base: str) -> str | None:
    """The detector's column: tuned on validation data when it was, else as it is."""
    return next((d for d in (f"{base}{TUNED}", base) if d in mx.detectors), None)


def summary_rows(folder: str, mx: M.Matrix) -> list[dict[str, object]]:
    """One row per loss of one setting's track: ID accuracy and the summary detectors."""
    setting, track = setting_name(folder)
    rows = []
    for g in mx.groups:
        acc = g.summary_stat("id_accuracy")
        rec: dict[str, object] = {"setting": setting, "track": track, "model": g.model,
                                  "id_dataset": g.id_dataset, "loss": g.label,
                                  "loss_name": g.loss, "seeds": g.n,
                                  "id_accuracy": acc[0] if acc else np.nan}  # fmt: skip
        for base in DETECTORS:
            det = _label(mx, base)
            for m in M.METRICS if det else ():
                rec[f"{base}_{m}"] = mx.value(g.label, det, m)
                for end in ("delta", "delta_lo", "delta_hi", "p", "p_holm", "significant"):
                    rec[f"{base}_{m}_{end}"] = mx.value(g.label, det, f"{m}_{end}")
        rows.append(rec)
    return rows


def _cell(rec: pd.Series, det: str, m: str) -> Cell:
    col = f"{det}_{m}"
    value, delta = rec.get(col, np.nan), rec.get(f"{col}_delta", np.nan)
    if pd.isna(value):
        return Cell("—")
    if pd.isna(delta):
        return Cell(f"{value:.2f}")
    sig = bool(rec.get(f"{col}_significant") == 1)
    better = T.is_better(m, delta)
    tone = {True: "good", False: "bad", None: None}[better] if sig else None
    return Cell(f"{value:.2f} (Δ {delta:+.2f}{'*' if sig else ''})", tone=tone)


def summary_table(frame: pd.DataFrame) -> TableSpec:
    pairs = [(d, m) for d in DETECTORS for m in M.METRICS if f"{d}_{m}" in frame.columns]
    names = [f"{DETECTORS[d]} {T.METRIC_NAMES[m]} {'↓' if T.LOWER_IS_BETTER[m] else '↑'}"
             for d, m in pairs]  # fmt: skip
    cols = ["Setting", "Track", "Model", "Loss", "Seeds", "ID acc ↑", *names]
    rows = [[Cell(str(r[k])) for k in ("setting", "track", "model", "loss", "seeds")]
            + [Cell(f"{r['id_accuracy']:.2f}"), *(_cell(r, d, m) for d, m in pairs)]
            for _, r in frame.iterrows()]  # fmt: skip
    return TableSpec("Across settings", cols, rows, NOTES)


def _plot(frame: pd.DataFrame, path: Path) -> Path | None:
    """Bars of MSP's test AUROC, one group per setting and track, one bar per loss (by name;
    by label when a setting has several runs of one loss, e.g. a tau sweep)."""
    if "msp_auroc" not in frame.columns:
        return None
    from oodbench.io import atomic_write_with
    from oodbench.report.plots import DPI, plt

    by = "loss_name" if not frame.duplicated(["setting", "track", "loss_name"]).any() else "loss"
    where = frame["setting"] + " · " + frame["track"]
    wide = frame.assign(where=where).pivot(index="where", columns=by, values="msp_auroc")
    wide = wide.loc[list(dict.fromkeys(where)), list(dict.fromkeys(frame[by]))]  # run order
    if by == "loss_name":
        wide = wide.rename(columns=losses.title)  # CE, LogitNorm, ...
    fig, ax = plt.subplots(figsize=(1.2 + 1.6 * len(wide), 3.6))
    wide.plot.bar(ax=ax, rot=0, width=0.8)
    ax.set(xlabel="", ylabel="MSP AUROC ↑ (%, test)", ylim=(0, 100))
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    plt.close(fig)
    return path


def _section(folder: str, mx: M.Matrix, oods: list[str]) -> str:
    setting, track = setting_name(folder)
    g = mx.groups[0]
    head = [f"## {setting}, {track} track: {g.model} on {g.id_dataset}",
            f"Test OOD sets: {', '.join(oods)}. Full report: [{folder}/{REPORT}]"
            f"({folder}/{REPORT})."]  # fmt: skip
    # the values of every detector and the ID accuracy; the changes are in the summary above
    # (MSP, energy) and in the setting's own report (every detector)
    tables = [t for t in M.matrix_tables(mx) if not t.title.startswith(("Best", "Δ"))]
    return "\n\n".join([*head, *(markdown_table(t) for t in tables)])
