"""The two-level paired bootstrap of each change against CE, from the runs' cached scores.

The seed-level interval (``metrics.paired_interval``) sees only how the per-seed differences
scatter: every seed is scored on the same test images, so the sampling of those images is not
in it. This interval resamples the seeds, then the test images within each drawn seed, the
same images for the loss and for CE (``stats.two_level_interval``), on the full OOD sets
(scores/ holds every image, not the paper protocol's subsamples). Rows whose scores are
missing (scores/ deleted, or a run scored before scores were cached) keep NaN bounds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.report.stats import SeedScores, two_level_interval
from oodbench.report.tables import Group
from oodbench.runs import RunDir

N_BOOT = 200  # outer resamples; each draws (seeds x resamples) image resamples per seed


def _seed_scores(a: Path, b: Path, det: str, id_set: str, oods: list[str]) -> SeedScores | None:
    ra, rb = RunDir(a), RunDir(b)
    id_a, id_b = ra.read_scores(det, id_set), rb.read_scores(det, id_set)
    if id_a is None or id_b is None or id_a.size != id_b.size:
        return None
    pairs = []
    for ood in oods:
        oa, ob = ra.read_scores(det, ood), rb.read_scores(det, ood)
        if oa is None or ob is None or oa.size != ob.size:
            return None
        pairs.append((oa, ob))
    return (id_a, id_b, pairs) if pairs else None


def add_two_level(
    frame: pd.DataFrame,
    groups: list[Group],
    baseline: str | None,
    oods: dict[str, list[str]],
    metrics: tuple[str, ...],
    n_boot: int = N_BOOT,
    positive: str = "id",
) -> pd.DataFrame:
    """``frame`` (matrix rows) plus m_delta_2l_lo / m_delta_2l_hi per metric. ``oods``:
    detector -> the OOD sets its average covers."""
    out = frame.copy()
    for m in metrics:
        out[f"{m}_delta_2l_lo"], out[f"{m}_delta_2l_hi"] = np.nan, np.nan
    by_label = {g.label: g for g in groups}
    if baseline is None or n_boot <= 0 or baseline not in by_label:
        return out
    base = {r.seed: r for r in by_label[baseline].runs}
    done: dict[tuple[str, str], dict[str, tuple[float, float]] | None] = {}
    for idx, row in out.iterrows():
        g, det = str(row["group"]), str(row["detector"])
        if g == baseline or g not in by_label:
            continue
        if (g, det) not in done:
            seeds = []
            for r in by_label[g].runs:
                if r.seed in base:
                    found = _seed_scores(r.path, base[r.seed].path, det, r.id_dataset,
                                         oods.get(det, []))  # fmt: skip
                    seeds.append(found)
            ok = bool(seeds) and all(s is not None for s in seeds)
            done[(g, det)] = (two_level_interval(seeds, positive, n_boot=n_boot)  # type: ignore[arg-type]
                              if ok else None)  # fmt: skip
        found = done[(g, det)]
        if found is not None:
            for m in metrics:
                out.loc[idx, [f"{m}_delta_2l_lo", f"{m}_delta_2l_hi"]] = found[m]
    return out
