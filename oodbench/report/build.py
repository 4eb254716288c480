"""Assemble the report: load runs, check conventions, aggregate, join references, lay out tables.

Reading order for a researcher: which runs, the per-detector average (the headline), the CE vs
LogitNorm deltas and calibration, the paper's numbers, then the per-OOD-set detail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import oodbench.report.confidence as C
import oodbench.report.matrix as M
import oodbench.report.ranks as R
import oodbench.report.reference as refs
import oodbench.report.tables as T
from oodbench.metrics import paired_interval
from oodbench.report.families import correct_rows
from oodbench.report.imageboot import N_BOOT as IMAGE_BOOT
from oodbench.report.load import Run, expand, load_runs
from oodbench.report.notes import params_note, roles_note
from oodbench.report.produced import produced
from oodbench.report.spec import SUMMARY_KEYS, Cell, Report, TableSpec, num, num_ci
from oodbench.runs import METRICS, SUMMARY


def build(
    run_dirs: list[Path],
    runs_dir: Path = Path("runs"),
    detectors: list[str] | None = None,
    oods: list[str] | None = None,
    reference: Path | None = None,
    convention: str | None = None,
    protocol: str | None = None,
    image_bootstrap: int = IMAGE_BOOT,
) -> Report:
    runs, frame = load_runs(expand(run_dirs, runs_dir))
    frame = T.select(frame, detectors, oods, convention, protocol)
    proto, conv = T.check_one_convention(frame)
    frame = T.add_aupr(frame)
    runs = [r for r in runs if str(r.path) in set(frame["run"])]
    groups = T.make_groups(runs)
    with_avg, common = T.with_averages(frame)
    cells = T.aggregate(with_avg, groups)
    ref = refs.load_reference(reference)
    report = Report(runs, groups, _join_reference(frame, runs, ref), cells, proto, conv, common)
    report.per_run = with_avg  # per-run rows with Average rows: seeds pair up from here
    _layout(report, ref, image_bootstrap)
    report.produced = produced(runs)
    return report


def _join_reference(frame: pd.DataFrame, runs: list[Run], ref: pd.DataFrame) -> pd.DataFrame:
    """Tidy rows plus the matching published value (same ID set, model, loss, detector, OOD)."""
    by_path = {str(r.path): r for r in runs}
    frame = frame.copy()
    for col in ("ref_fpr95", "ref_auroc", "ref_aupr", "ref_source"):
        frame[col] = np.nan if col != "ref_source" else ""
    for idx, row in frame.iterrows():
        run = by_path[row["run"]]
        hit = refs.lookup(
            refs.matching(ref, run.id_dataset, run.model, run.loss),
            row["detector"],
            row["ood_dataset"],
        )
        if hit is not None:
            frame.loc[idx, ["ref_fpr95", "ref_auroc", "ref_aupr"]] = hit[list(refs.VALUES)].values
            frame.loc[idx, "ref_source"] = hit["source"]
    frame["label"] = frame["run"].map({k: r.label for k, r in by_path.items()})
    frame["loss"] = frame["run"].map({k: r.loss for k, r in by_path.items()})
    # tau only means something for LogitNorm; a CE config still carries the default.
    taus = {k: r.tau if r.loss == "logitnorm" else np.nan for k, r in by_path.items()}
    frame["tau"] = frame["run"].map(taus)
    ids = frame["id_dataset"] if "id_dataset" in frame else [""] * len(frame)
    near = [T.is_near(o, str(i)) for o, i in zip(frame["ood_dataset"], ids, strict=True)]
    frame["track"] = np.where(near, "near", "far")
    return frame


# --- layout -------------------------------------------------------------------------------


def _layout(report: Report, ref: pd.DataFrame, image_bootstrap: int = IMAGE_BOOT) -> None:
    report.header = _header(report)
    used: dict[tuple[str, str], None] = {}  # (source, note) in first-use order
    sections = [("Runs", [_runs_table(report)])]
    sections.append(("Average over OOD sets, per detector", [_average_table(report, ref, used)]))
    if (report.per_run["ood_dataset"] == T.NEAR_AVERAGE).any():
        tables = [_track_table(report, label) for label in (T.NEAR_AVERAGE, T.FAR_AVERAGE)]
        sections.append(("Near-OOD and far-OOD apart", tables))
    pair = T.ce_logitnorm_pair(report.groups)
    if pair:
        sections.append(
            (f"{pair[0].label} vs {pair[1].label}", _pair_tables(report, ref, pair, used))
        )
    confidence = C.attach(report)  # overconfidence, failure, calibration, shift, FSOOD
    if M.wanted(report.groups):  # several losses: which loss, with which detector?
        positive = "ood" if report.convention == "ood-positive" else "id"
        report.matrix = M.loss_matrix(report.tidy, report.groups, image_bootstrap, positive,
                                      report.confidence.failure)  # fmt: skip
        sections.append(("Loss × detector matrix", M.matrix_tables(report.matrix)))
    group_of = {str(r.path): g.label for g in report.groups for r in g.runs}
    report.ranks, rank_tables = R.section(report.tidy, group_of, [g.label for g in report.groups])
    sections.append(("Rank statistics", rank_tables))
    sections += confidence
    detail = [_per_ood_table(report, ref, det, used) for det in report.detectors]
    sections.append(("Per OOD set", detail))
    report.sections = sections
    report.references = sorted(used)


def _header(report: Report) -> list[str]:
    n_runs = sum(g.n for g in report.groups)
    return [
        f"{n_runs} run(s) in {len(report.groups)} column(s); values in %, "
        "↓ lower is better, ↑ higher is better; the best value of each row is in bold.",
        f"Protocol: {T.PROTOCOL_TEXT.get(report.protocol, report.protocol)}.",
        f"Positive class: {T.CONVENTION_TEXT.get(report.convention, report.convention)}.",
        "[lo, hi] is the 95% interval: with one seed the bootstrap over test samples "
        f"({METRICS}), with several the t-interval of the mean over seeds; Average rows are "
        "the mean over OOD sets, their bounds the mean of the sets' bounds (conservative). "
        "± (only where a row has no interval) is the std over seeds or over the paper "
        "protocol's OOD draws.",
    ]


def _runs_table(report: Report) -> TableSpec:
    columns = ["Column", "Seeds", "Model", "ID set", *[label for _, label, _ in SUMMARY_KEYS]]
    rows = []
    for g in report.groups:
        seeds = ", ".join(str(r.seed) for r in g.runs)
        stats = [g.summary_stat(key) for key, _, _ in SUMMARY_KEYS]
        rows.append(
            [Cell(g.label), Cell(f"{g.n} ({seeds})"), Cell(g.model), Cell(g.id_dataset)]
            + [Cell(num(*s)) if s else Cell("—") for s in stats]
        )
    runs = "; ".join(f"{g.label}: {', '.join(str(r.path) for r in g.runs)}" for g in report.groups)
    notes = [f"Run dirs — {runs}", *_temperature_notes(report.runs)]
    return TableSpec("Runs", columns, rows, notes=notes)


def _group_ref_rows(report: Report, ref: pd.DataFrame) -> dict[str, pd.DataFrame]:
    out = {}
    for g in report.groups:
        rows = refs.matching(ref, g.id_dataset, g.model, g.loss)
        if len(rows):
            out[g.label] = rows
    return out


def _metric_columns(report: Report, ref_rows: dict[str, pd.DataFrame]) -> list[str]:
    cols = []
    for g in report.groups:
        cols += [
            f"{g.label} {T.METRIC_NAMES[m]}{'↓' if T.LOWER_IS_BETTER[m] else '↑'}"
            for m in T.METRIC_COLS
        ]
        if g.label in ref_rows:
            cols += [f"{g.label} paper {T.METRIC_NAMES[m]}" for m in T.METRIC_COLS]
    return cols


def _metric_row(
    report: Report,
    det: str,
    ood: str,
    ref_rows: dict[str, pd.DataFrame],
    used: dict[tuple[str, str], None],
) -> list[Cell]:
    found = {g.label: T.cell(report.cells, g.label, det, ood) for g in report.groups}
    best = {
        m: T.best_groups({k: (c[m] if c is not None else None) for k, c in found.items()}, m)
        for m in T.METRIC_COLS
    }
    row: list[Cell] = []
    for g in report.groups:
        c = found[g.label]
        for m in T.METRIC_COLS:
            text = num_ci(c[m], c[f"{m}_lo"], c[f"{m}_hi"], c[f"{m}_std"]) if c is not None else "—"
            row.append(Cell(text, g.label in best[m]))
        if g.label in ref_rows:
            hit = refs.lookup(ref_rows[g.label], det, ood)
            if hit is not None:
                used[(hit["source"], hit["note"])] = None
            row += [Cell(num(hit[m]) if hit is not None else "—") for m in T.METRIC_COLS]
    return row


def _ref_note(ref_rows: dict[str, pd.DataFrame]) -> list[str]:
    if not ref_rows:
        return ["No published row has this ID set and model; see the CE → LogitNorm change below."]
    return ["'paper' columns: the published value for the same ID set, model, loss and detector "
            "(sources under References)."]  # fmt: skip


def _average_table(
    report: Report, ref: pd.DataFrame, used: dict[tuple[str, str], None]
) -> TableSpec:
    ref_rows = _group_ref_rows(report, ref)
    rows = [
        [Cell(det)] + _metric_row(report, det, T.AVERAGE, ref_rows, used)
        for det in report.detectors
    ]
    sets = {det: ", ".join(s) for det, s in report.common_oods.items()}
    one = len(set(sets.values())) == 1
    over = next(iter(sets.values())) if one else "; ".join(f"{d}: {s}" for d, s in sets.items())
    notes = [f"Mean over OOD sets: {over}.", *roles_note(report), *params_note(report),
             *_ref_note(ref_rows)]  # fmt: skip
    return TableSpec(
        "Average over OOD sets, per detector",
        ["Detector", *_metric_columns(report, ref_rows)],
        rows,
        notes,
    )


def _track_table(report: Report, label: str) -> TableSpec:
    """One track's average per detector: near = held-out classes of the ID set, far = the rest."""
    rows = [[Cell(det)] + _metric_row(report, det, label, {}, {}) for det in report.detectors]
    tidy = report.tidy[report.tidy["ood_dataset"] != T.AVERAGE]
    ids = dict(
        zip(
            tidy["ood_dataset"],
            tidy["run"].map({str(r.path): r.id_dataset for r in report.runs}),
            strict=False,
        )
    )
    near = sorted(o for o, i in ids.items() if T.is_near(o, str(i)))
    far = sorted(o for o in ids if o not in near and o not in (T.NEAR_AVERAGE, T.FAR_AVERAGE))
    sets = near if label == T.NEAR_AVERAGE else far
    note = f"{label}: mean over {', '.join(sets)}."
    return TableSpec(label, ["Detector", *_metric_columns(report, {})], rows, [note])


def _per_ood_table(
    report: Report, ref: pd.DataFrame, det: str, used: dict[tuple[str, str], None]
) -> TableSpec:
    ref_rows = _group_ref_rows(report, ref)
    oods = [
        o for o in dict.fromkeys(report.tidy.loc[report.tidy["detector"] == det, "ood_dataset"])
    ]
    rows = [[Cell(o)] + _metric_row(report, det, o, ref_rows, used) for o in oods]
    rows.append([Cell(T.AVERAGE, best=True)] + _metric_row(report, det, T.AVERAGE, ref_rows, used))
    return TableSpec(f"Detector: {det}", ["OOD set", *_metric_columns(report, ref_rows)], rows)


SIGNIFICANT = "*"  # a difference whose Holm-adjusted p (within its family) is below 0.05
PAIRED_NOTE = (
    "✓/✗ give the direction only. [lo, hi] is the 95% paired t-interval of the difference "
    "over seeds (LogitNorm seed s − CE seed s); * and colour mark a significant difference: "
    "its paired t-test's p, Holm-adjusted over the family (every detector of this table, one "
    "metric, one setting: tuned rows, or the papers' defaults), is below 0.05; n/a: one seed, "
    "no interval."
)


def _delta_cell(
    metric: str,
    delta: float,
    rel: float | None = None,
    paired: tuple[float, ...] | None = None,
    sig: bool | None = None,
) -> Cell:
    """A difference; ``paired``: its interval (lo, hi), () when there is none (one seed), None
    for a published difference (no interval known): only a significant one gets a colour.
    ``sig``: the Holm-corrected verdict when the difference is one of a family (else the
    interval decides: a family of one)."""
    better = T.is_better(metric, delta)
    mark = {True: " ✓", False: " ✗", None: ""}[better]
    text = "—" if not np.isfinite(delta) else f"{delta:+.2f}{mark}"
    if rel is not None and np.isfinite(rel):
        text = text.replace(mark, f" ({rel:+.1f}%){mark}") if mark else f"{text} ({rel:+.1f}%)"
    if paired is None or not np.isfinite(delta):
        return Cell(text)
    if len(paired) != 2 or not np.all(np.isfinite(paired)):
        return Cell(f"{text} [n/a]")
    lo, hi = paired
    if not (sig if sig is not None else (lo > 0 or hi < 0)):
        return Cell(f"{text} [{lo:+.2f}, {hi:+.2f}]")
    return Cell(f"{text} [{lo:+.2f}, {hi:+.2f}]{SIGNIFICANT}",
                tone={True: "good", False: "bad", None: None}[better])  # fmt: skip


def _sig(r: pd.Series, m: str) -> bool | None:
    value = r.get(f"{m}_significant")
    return None if value is None or pd.isna(value) else bool(value)


def _paired(r: pd.Series, m: str) -> tuple[float, ...]:
    lo, hi = r.get(f"{m}_delta_lo", np.nan), r.get(f"{m}_delta_hi", np.nan)
    return (float(lo), float(hi)) if np.isfinite(lo) and np.isfinite(hi) else ()


def _pair_tables(
    report: Report,
    ref: pd.DataFrame,
    pair: tuple[T.Group, T.Group],
    used: dict[tuple[str, str], None],
) -> list[TableSpec]:
    ce, ln = pair
    comp = T.comparison(report.cells, ce, ln, report.per_run)
    if "fpr95_p" in comp.columns:  # several seeds: Holm within each setting's family
        comp = correct_rows(comp, T.METRIC_COLS)
    report.comparison = comp
    cols, rows = ["Detector"], []
    for m in T.METRIC_COLS:
        name = T.METRIC_NAMES[m]
        cols += [f"{name} {ce.label}", f"{name} {ln.label}", f"Δ{name}"]
    for _, r in comp.iterrows():
        row = [Cell(str(r["detector"]))]
        for m in T.METRIC_COLS:
            row += [
                Cell(num(r[f"{m}_ce"])),
                Cell(num(r[f"{m}_ln"])),
                _delta_cell(m, r[f"{m}_delta"], paired=_paired(r, m), sig=_sig(r, m)),
            ]
        rows.append(row)
    deltas = TableSpec(
        "OOD detection, average over OOD sets",
        cols,
        rows,
        notes=[
            "Δ = LogitNorm − CE in points; ✓ = better (FPR95 down, AUROC/AUPR up), ✗ = worse.",
            PAIRED_NOTE,
        ],
    )
    return [deltas, _calibration_table(ce, ln), _changes_table(report, ref, comp, ce, ln, used)]


def _calibration_table(ce: T.Group, ln: T.Group) -> TableSpec:
    rows = []
    for key, label, lower in SUMMARY_KEYS:
        a, b = ce.summary_stat(key), ln.summary_stat(key)
        delta = b[0] - a[0] if a and b else np.nan
        paired = _paired_summary(ce, ln, key)
        if lower is None:
            d = Cell(num(delta) + (f" [{paired[0]:+.2f}, {paired[1]:+.2f}]" if paired else ""))
        else:
            d = _delta_cell("fpr95" if lower else "auroc", delta, paired=paired)
        rows.append([Cell(label), Cell(num(*a) if a else "—"), Cell(num(*b) if b else "—"), d])
    notes = [f"From {SUMMARY}; ECE uses 15 equal-width bins on the max softmax probability; "
             "T is fitted on the held-out ID validation split, never on the test set."]  # fmt: skip
    notes += _temperature_notes([*ce.runs, *ln.runs])
    return TableSpec("ID accuracy and calibration", ["", ce.label, ln.label, "Δ"], rows, notes)


def _paired_summary(ce: T.Group, ln: T.Group, key: str) -> tuple[float, ...]:
    """The paired t-interval over seeds of a summary.json number's LogitNorm − CE change."""
    a = {r.seed: r.summary.get(key) for r in ce.runs}
    b = {r.seed: r.summary.get(key) for r in ln.runs}
    diffs = [float(b[s]) - float(a[s]) for s in a if a[s] is not None and b.get(s) is not None]
    return paired_interval(diffs) or ()


def _temperature_notes(runs: list[Run]) -> list[str]:
    """The runs whose temperature stopped at a bound of its search range (summary.json)."""
    stuck = [f"{r.label} seed {r.seed}" for r in runs if r.summary.get("temperature_warning")]
    if not stuck:
        return []
    first = next(r.summary["temperature_warning"] for r in runs
                 if r.summary.get("temperature_warning"))  # fmt: skip
    return [f"⚠ Temperature at a bound of its search range in {', '.join(stuck)}: {first}."]


def _changes_table(
    report: Report,
    ref: pd.DataFrame,
    comp: pd.DataFrame,
    ce: T.Group,
    ln: T.Group,
    used: dict[tuple[str, str], None],
) -> TableSpec:
    """Our CE -> LogitNorm change next to the published ones (absolute and relative)."""
    cols = ["Source", "Setting", "Detector", "OOD", "FPR95 CE → LN", "ΔFPR95 (rel.)"]
    cols += ["AUROC CE → LN", "ΔAUROC (rel.)"]
    rows = []
    setting = f"{ce.id_dataset}, {ce.model}"
    for _, r in comp.iterrows():
        rows.append(_change_row("this report", setting, r["detector"], T.AVERAGE, r, ours=True))
    changes = refs.paper_changes(ref)
    report.changes = changes
    for _, r in changes.iterrows():
        for note in r["notes"]:
            used[(r["source"], note)] = None
        where = ", ".join(x for x in (r["id_dataset"], r["model"]) if x) or "common benchmarks"
        rows.append(_change_row(r["source"], where, r["detector"] or "—", r["ood_dataset"], r))
    notes = ["rel. = (LN − CE) / CE. A published 'delta' row is quoted as the source states it.",
             "This report's rows carry the paired interval over seeds as above; a published "
             "change has none here and is never marked significant.",
             "Different data, models and budgets: compare the direction and rough size of the "
             "change, not the absolute values."]  # fmt: skip
    return TableSpec("CE → LogitNorm change: this report vs published", cols, rows, notes)


def _change_row(
    source: str, setting: str, det: str, ood: str, r: pd.Series, ours: bool = False
) -> list[Cell]:
    """``ours``: a change this report measured, shown with its paired interval over seeds."""
    row = [Cell(source), Cell(setting), Cell(str(det)), Cell(str(ood))]
    for m in ("fpr95", "auroc"):
        a, b = r[f"{m}_ce"], r[f"{m}_ln"]
        row.append(Cell(f"{num(a)} → {num(b)}" if np.isfinite(a) else "—"))
        rel = r[f"{m}_rel"]
        paired = _paired(r, m) if ours else None
        sig = _sig(r, m) if ours else None
        row.append(_delta_cell(m, r[f"{m}_delta"], rel if np.isfinite(rel) else None, paired, sig))
    return row
