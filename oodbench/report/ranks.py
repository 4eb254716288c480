"""Rank statistics across settings (issue 23): which detectors, and which (loss, detector)
pairs, rank apart once every block of the study is counted?

A block is one (track, seed, OOD set): the same test images seen by every column. Per loss,
the columns are its detectors; across losses, the (loss, detector) pairs. On the test AUROC
(higher ranks first), Friedman's test asks whether any column ranks apart
(``scipy.stats.friedmanchisquare``), Conover's post-hoc test with Holm's correction which pairs
do (``scikit_posthocs.posthoc_conover_friedman``), and the critical-difference diagram draws
the mean ranks with bars joining the columns no pair test separates
(``scikit_posthocs.critical_difference_diagram``). Only the tuned family is ranked (tuned rows,
and detectors without a grid), so each detector appears once. Nothing runs with fewer than
``MIN_BLOCKS`` blocks: the tests need them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.report.families import settings_of
from oodbench.report.spec import Cell, TableSpec

MIN_BLOCKS = 5
CD_MAX = 34  # columns drawn in one critical-difference diagram (the best by mean rank)
METRIC = "auroc"
BLOCK = ["track", "seed", "ood_dataset"]


@dataclass
class RankTest:
    name: str  # "CE", or "all losses"
    blocks: int
    statistic: float
    p: float
    mean_ranks: pd.Series  # column -> mean rank (1 = best)
    posthoc: pd.DataFrame  # Holm-adjusted Conover p-values, column x column


def _tuned_rows(rows: pd.DataFrame) -> pd.DataFrame:
    where = settings_of([str(d) for d in dict.fromkeys(rows["detector"])])
    if not any("tuned" in v for v in where.values()):
        return rows
    return rows[[("tuned" in where[str(d)]) for d in rows["detector"]]]


def _wide(rows: pd.DataFrame, column: pd.Series) -> pd.DataFrame:
    """Blocks (rows) x columns of the metric; only blocks complete for every column."""
    wide = rows.assign(column=column).pivot_table(index=BLOCK, columns="column", values=METRIC,
                                                  aggfunc="mean")  # fmt: skip
    return wide.dropna(axis=0, how="any")


def rank_test(name: str, wide: pd.DataFrame) -> RankTest | None:
    """Friedman, Conover-Holm and mean ranks of ``wide`` (blocks x columns, higher better)."""
    import scikit_posthocs as sp
    from scipy.stats import friedmanchisquare

    if len(wide) < MIN_BLOCKS or wide.shape[1] < 3:
        return None
    stat, p = friedmanchisquare(*[wide[c].to_numpy() for c in wide.columns])
    ranks = wide.rank(axis=1, ascending=False).mean(axis=0).sort_values()
    posthoc = sp.posthoc_conover_friedman(wide.reset_index(drop=True), p_adjust="holm")
    return RankTest(name, len(wide), float(stat), float(p), ranks, posthoc)


def rank_tests(rows: pd.DataFrame, baseline_first: list[str]) -> list[RankTest]:
    """Per loss column (in ``baseline_first`` order) over its detectors, then over every
    (loss, detector) pair. ``rows``: tidy per-run, per-OOD-set rows with group, seed, track,
    detector, ood_dataset and the metric."""
    rows = _tuned_rows(rows)
    out = []
    for g in baseline_first:
        part = rows[rows["group"] == g]
        found = rank_test(g, _wide(part, part["detector"]))
        out += [found] if found else []
    pairs = rows["group"] + " · " + rows["detector"]
    found = rank_test("all losses", _wide(rows, pairs))
    return out + ([found] if found else [])


def blocks_note(rows: pd.DataFrame) -> str:
    n = len(rows.drop_duplicates(BLOCK)) if len(rows) else 0
    return (f"Rank tests skipped: {n} block(s) of (track, seed, OOD set), fewer than "
            f"{MIN_BLOCKS}.")  # fmt: skip


def to_frame(tests: list[RankTest]) -> pd.DataFrame:
    """One row per (test, column): mean rank, the Friedman statistic and p, blocks."""
    records = []
    for t in tests:
        for col, rank in t.mean_ranks.items():
            records.append({"test": t.name, "column": col, "mean_rank": float(rank),
                            "blocks": t.blocks, "friedman_chi2": t.statistic,
                            "friedman_p": t.p, "metric": METRIC})  # fmt: skip
    return pd.DataFrame(records)


def posthoc_frame(tests: list[RankTest]) -> pd.DataFrame:
    """The Conover-Holm p-values in long form: test, a, b, p_holm."""
    records = []
    for t in tests:
        cols = list(t.posthoc.columns)
        for i, a in enumerate(cols):
            for b in cols[i + 1 :]:
                records.append({"test": t.name, "a": a, "b": b,
                                "p_holm": float(t.posthoc.loc[a, b])})  # fmt: skip
    return pd.DataFrame(records)


def cd_diagram(test: RankTest, path: Path) -> Path:
    """The critical-difference diagram of one test (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scikit_posthocs as sp

    if len(test.mean_ranks) > CD_MAX:  # the best CD_MAX columns: a readable diagram
        keep = list(test.mean_ranks.index[:CD_MAX])
        test = RankTest(test.name, test.blocks, test.statistic, test.p,
                        test.mean_ranks[keep], test.posthoc.loc[keep, keep])  # fmt: skip
    height = max(2.5, 0.22 * len(test.mean_ranks))
    fig, ax = plt.subplots(figsize=(9, height))
    sp.critical_difference_diagram(test.mean_ranks, test.posthoc, ax=ax)
    title = (f"{test.name}: mean rank by test AUROC over {test.blocks} blocks "
             f"(Friedman p = {test.p:.2g}; bars: Conover-Holm p ≥ 0.05)")  # fmt: skip
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def slug(name: str) -> str:
    keep = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in name.lower())
    return "-".join(part for part in keep.split("-") if part)


def summary_table(tests: list[RankTest], top: int = 5) -> list[list[str]]:
    """Rows: test, blocks, Friedman chi2 and p, the best ``top`` columns by mean rank."""
    rows = []
    for t in tests:
        best = ", ".join(f"{c} ({r:.1f})" for c, r in t.mean_ranks.head(top).items())
        rows.append([t.name, str(t.blocks), f"{t.statistic:.1f}", f"{t.p:.2g}", best])
    return rows


def separated(test: RankTest) -> int:
    """How many column pairs the Conover-Holm test separates (p < 0.05)."""
    values = test.posthoc.to_numpy()
    upper = values[np.triu_indices_from(values, k=1)]
    return int((upper < 0.05).sum())


def section(tidy: pd.DataFrame, group_of_run: dict[str, str], labels: list[str]
            ) -> tuple[list[RankTest], list[TableSpec]]:  # fmt: skip
    """The report's rank tests and their table (a note alone when there are too few blocks)."""
    from oodbench.report.tables import AVERAGE, FAR_AVERAGE, NEAR_AVERAGE

    rows = tidy[~tidy["ood_dataset"].isin([AVERAGE, NEAR_AVERAGE, FAR_AVERAGE])]
    rows = rows.assign(group=rows["run"].map(group_of_run))
    if "track" not in rows.columns:
        rows = rows.assign(track="all")
    tests = rank_tests(rows, labels)
    if not tests:
        note = [[Cell("—"), Cell(blocks_note(rows))]]
        return [], [TableSpec("Rank tests", ["Test", "Note"], note)]
    table = []
    for row, t in zip(summary_table(tests), tests, strict=True):
        pairs = len(t.mean_ranks) * (len(t.mean_ranks) - 1) // 2
        table.append([Cell(x) for x in row[:4]] + [Cell(f"{separated(t)} of {pairs}"),
                                                   Cell(row[4])])  # fmt: skip
    notes = [
        "Test AUROC ranked within each block (track, seed, OOD set; rank 1 = highest); tuned "
        "rows and detectors without a grid. Friedman: do the columns rank apart at all? "
        "Pairs separated: Conover's post-hoc test, Holm-adjusted p < 0.05 "
        "(scikit-posthocs). Critical-difference diagrams are among the plots; every mean rank "
        "and pair p-value is in the ranks CSV (report -f csv)."
    ]
    cols = ["Test", "Blocks", "Friedman χ²", "p", "Pairs separated", "Best mean ranks"]
    return tests, [TableSpec("Rank tests", cols, table, notes)]
