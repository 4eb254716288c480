"""Metrics rows of ``oodbench score``: the point values of one (detector, OOD set) pair under
the full or paper protocol, their bootstrap intervals, and ``RowWriter``, which computes rows on
a background thread and merges each into metrics.csv as soon as it is done.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodbench import metrics
from oodbench.config import ScoreConfig
from oodbench.runs import VALUES, merge_metrics


def metric_row(
    id_scores: torch.Tensor, ood_scores: torch.Tensor, cfg: ScoreConfig, key: tuple = ()
) -> dict[str, Any]:
    """fpr95/auroc/aupr in percent; under the paper protocol the mean and std of the draws;
    with each value its 95% bootstrap interval, seeded by the row's ``key`` (runs.KEY)."""
    if cfg.protocol == "full":
        values = metrics.ood_metrics(id_scores, ood_scores, cfg.positive)
        row = {k: 100 * v for k, v in values.items()}
        row.update({f"{k}_std": math.nan for k in VALUES})
        row.update(intervals(id_scores, ood_scores, cfg, key, len(ood_scores)))
        return {**row, "n_id": len(id_scores), "n_ood": len(ood_scores)}
    n_sub = min(len(ood_scores), max(1, len(id_scores) // 5))
    draws = []
    for draw in range(cfg.paper_draws):
        rng = np.random.default_rng(cfg.paper_seed + draw)
        pick = torch.from_numpy(rng.choice(len(ood_scores), size=n_sub, replace=False))
        # fast_metrics: scikit-learn's definitions (equal to 1e-12, tests/test_metrics.py) at
        # a tenth of the time; 10 draws a row made scikit-learn's checks a quarter of -d all
        draws.append(metrics.fast_metrics(id_scores, ood_scores[pick], cfg.positive))
    row = {}
    for k in VALUES:
        vals = 100 * np.array([d[k] for d in draws])
        row[k], row[f"{k}_std"] = float(vals.mean()), float(vals.std())
    row.update(intervals(id_scores, ood_scores, cfg, key, n_sub))
    return {**row, "n_id": len(id_scores), "n_ood": n_sub}


def intervals(
    id_scores: torch.Tensor, ood_scores: torch.Tensor, cfg: ScoreConfig, key: tuple, size: int
) -> dict[str, float]:
    """``<value>_lo``/``_hi`` in percent and ``n_boot``. Each resample draws ``size`` OOD
    scores with replacement from the whole OOD set (the paper protocol's subsample size), so
    under the paper protocol the interval is that of one draw: conservative for the mean of
    the draws, which is never less precise than one draw (docs/metrics.md)."""
    from oodbench.scoring.confidence import resamples

    n_boot = resamples()
    found = metrics.bootstrap_intervals(id_scores, ood_scores, cfg.positive, n_boot=n_boot,
                                        seed=metrics.row_seed(*key), ood_size=size)  # fmt: skip
    out: dict[str, float] = {"n_boot": n_boot}
    for k, (lo, hi) in found.items():
        out[f"{k}_lo"], out[f"{k}_hi"] = 100 * lo, 100 * hi
    return out


WORKERS = 2  # background threads for rows (at most one per core)


class RowWriter:
    """Metrics rows computed on background threads while the caller scores the next
    detector, and merged into metrics.csv (kept sorted by key) each as soon as it is done.

    The bootstrap and the paper protocol's draws (numpy and torch, which release the GIL) are
    about 40% of ``score -d all``; overlapping them with the detectors' fits and forward passes
    saves most of that on 2 cores (docs/performance.md). With the overconfidence track's
    failure and full-spectrum rows they outlast the forward passes, so a second thread takes
    rows too (``WORKERS``, at most one per core): the main thread is idle by then. Each merge
    takes the file's lock (``flock`` on its own open file, so threads exclude each other too).
    A failed row raises at the next ``submit`` or at ``rows``; leaving the block early cancels
    the rows not yet started.
    """

    def __init__(self, path: Path) -> None:
        import os
        from concurrent.futures import ThreadPoolExecutor

        self.path = path
        workers = max(1, min(WORKERS, os.cpu_count() or 1))
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="oodbench-metrics")
        self.pending: list[Any] = []

    def _finish(self, head: dict[str, Any], id_scores: torch.Tensor, ood_scores: torch.Tensor,
                cfg: ScoreConfig, path: Path | None = None) -> dict[str, Any]:  # fmt: skip
        key = (head["detector"], head["ood_dataset"], cfg.protocol, cfg.convention)
        if path is not None:  # another table of metrics.csv's schema (fsood.csv): its own seeds
            key = (path.name, *key)
        row = {**head, **metric_row(id_scores, ood_scores, cfg, key)}
        merge_metrics(path or self.path, [row])  # each finished pair is kept at once
        return row if path is None else {**row, "_table": path.name}

    def _finish_failure(self, head: dict[str, Any], scores: torch.Tensor, correct: np.ndarray,
                        path: Path) -> dict[str, Any]:  # fmt: skip
        from oodbench.scoring.confidence import failure_row
        from oodbench.scoring.rowfiles import FAILURE_COLUMNS, FAILURE_KEY, merge_rows

        row = {**head, **failure_row(scores, correct, (head["detector"], head["dataset"]))}
        merge_rows(path, [row], FAILURE_COLUMNS, FAILURE_KEY)
        return {}

    def _queue(self, fn: Any, *args: Any) -> None:
        for done in (f for f in self.pending if f.done()):
            done.result()  # re-raises a failed row's error now, not at the end
        self.pending.append(self.pool.submit(fn, *args))

    def submit(self, head: dict[str, Any], id_scores: torch.Tensor, ood_scores: torch.Tensor,
               cfg: ScoreConfig, path: Path | None = None) -> None:  # fmt: skip
        """A metrics row, into metrics.csv (or ``path``, a file of the same schema)."""
        self._queue(self._finish, head, id_scores, ood_scores, cfg, path)

    def submit_failure(self, head: dict[str, Any], scores: torch.Tensor, correct: np.ndarray,
                       path: Path) -> None:  # fmt: skip
        """A failure.csv row (oodbench.scoring.rowfiles); not among ``rows()``."""
        self._queue(self._finish_failure, head, scores, correct, path)

    def rows(self) -> list[dict[str, Any]]:
        """The new metrics.csv rows (the other tables' rows are written, not returned)."""
        done = [f.result() for f in self.pending]
        return [r for r in done if r and r.get("_table") is None]

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
