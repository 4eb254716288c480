"""The overconfidence track of ``oodbench score`` (issue 24), beside the OOD rows:

* **failure.csv**: every detector judged on the model's own mistakes (correct vs wrong
  predictions, ``metrics.failure_metrics``) on the ID test set and on the shifted mix.
* **shift.csv**: accuracy, calibration (raw and with the validation temperature) and MSP's
  failure metrics on the ID test set and on each covariate-shifted copy of it (one row per
  corruption and severity, ``oodbench.data.shifted_sets``).
* **fsood.csv**: full-spectrum OOD (OpenOOD v1.5's FSOOD): the ID side is the shifted sets'
  sample of the ID test set (``--shift-size`` images, ``data.sample_indices``) plus the shifted
  mix, one shifted copy per sampled image, taken from the shifted sets in turn (image i from
  set i mod K), so both halves weigh the same whatever the number of sets.

Each shifted set is one cached forward pass (the extraction cache); its images are dropped as
soon as its row and its share of the mix are taken.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from oodbench import metrics
from oodbench.data.imageset import ImageSet
from oodbench.errors import UserError
from oodbench.scoring.rowfiles import CLEAN, FAILURE_VALUES

ScoreFn = Callable[[Any, str, ImageSet, ImageSet | None], torch.Tensor]
MIX = "shifted-mix"  # the mix's name suffix: "<id set>-shifted-mix"


def shift_names(id_name: str, size: int) -> list[str]:
    """The covariate-shifted copies of ``id_name``'s test set, ``size`` images each (0: all;
    none for a folder ID set, and none when ``OODBENCH_NO_SHIFT=1``: the test suite sets it so
    that the `score` and `bench` processes it starts skip the 60 real sets, as ``--no-shift``
    would)."""
    if os.environ.get("OODBENCH_NO_SHIFT") == "1":
        return []
    from oodbench.data import shifted_sets

    return list(shifted_sets(id_name, size))


def shift_label(name: str) -> tuple[str, int]:
    """(corruption, severity) of a shifted set: from its DatasetSpec's fields when it has them,
    else from a name ending in ``-<corruption>-<severity>``."""
    from oodbench.data import DATASETS

    spec = DATASETS.get(name)
    corruption, severity = getattr(spec, "corruption", None), getattr(spec, "severity", None)
    if corruption is not None and severity is not None:
        return str(corruption), int(severity)
    found = re.search(r"-([a-z_]+)-(\d)$", name)
    return (found.group(1), int(found.group(2))) if found else (name, 0)


def calibration(logits: torch.Tensor, labels: torch.Tensor, t: float | None) -> dict[str, Any]:
    """Accuracy, ECE, NLL and Brier of softmax(logits) and of softmax(logits / t), percent
    (NLL in nats); the scaled values are NaN without a temperature."""
    probs = metrics.softmax(logits)
    row: dict[str, Any] = {
        "accuracy": 100 * metrics.id_accuracy(logits, labels),
        "ece": 100 * metrics.ece(probs, labels), "nll": metrics.nll(logits, labels),
        "brier": 100 * metrics.brier(probs, labels), "temperature": t,
        "ece_ts": np.nan, "nll_ts": np.nan, "brier_ts": np.nan,
    }  # fmt: skip
    if t is not None:
        scaled = metrics.softmax(logits, t)
        row.update(ece_ts=100 * metrics.ece(scaled, labels), nll_ts=metrics.nll(logits, labels, t),
                   brier_ts=100 * metrics.brier(scaled, labels))  # fmt: skip
    return row


def correct_of(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    return (logits.argmax(dim=1) == labels).numpy()


def resamples() -> int:
    """Bootstrap resamples per metrics or failure row: ``OODBENCH_N_BOOT``, else
    ``metrics.N_BOOT`` (1000). Fewer are quicker and give rougher bounds; each row records its
    count in ``n_boot``. The test suite sets 100."""
    text = os.environ.get("OODBENCH_N_BOOT", str(metrics.N_BOOT))
    if not text.isdigit() or int(text) < 10:
        raise UserError(f"OODBENCH_N_BOOT must be a whole number of resamples, at least 10; "
                        f"got {text!r}")  # fmt: skip
    return int(text)


def failure_row(scores: torch.Tensor, correct: np.ndarray, key: tuple) -> dict[str, Any]:
    """The failure metrics in percent with their bootstrap intervals, seeded by ``key``."""
    point, n_boot = metrics.failure_metrics(scores, correct), resamples()
    found = metrics.failure_intervals(scores, correct, n_boot=n_boot, seed=metrics.row_seed(*key))
    row: dict[str, Any] = {k: 100 * point[k] for k in FAILURE_VALUES}
    for k, (lo, hi) in found.items():
        row[f"{k}_lo"], row[f"{k}_hi"] = 100 * lo, 100 * hi
    return row | {"n": len(correct), "n_wrong": int((~correct).sum()), "n_boot": n_boot}


def shift_row(name: str, logits: torch.Tensor, labels: torch.Tensor, t: float | None,
              clean: bool = False) -> dict[str, Any]:  # fmt: skip
    """One row of shift.csv: the set's calibration and MSP's failure metrics (point values)."""
    corruption, severity = (CLEAN, 0) if clean else shift_label(name)
    msp = torch.from_numpy(metrics.softmax(logits).max(axis=1))
    failure = metrics.failure_metrics(msp, correct_of(logits, labels))
    return {"dataset": name, "corruption": corruption, "severity": severity, "n": len(labels),
            **calibration(logits, labels, t),
            **{f"msp_{k}": 100 * v for k, v in failure.items()}}  # fmt: skip


class Mix:
    """The shifted mix, filled set by set: test image i from shifted set i mod K."""

    def __init__(self, id_set: ImageSet, k: int) -> None:
        self.id_set, self.k, self.images = id_set, k, torch.empty_like(id_set.images)
        self.meta: list[str] = []

    def take(self, j: int, shifted: ImageSet, index: torch.Tensor | None = None) -> None:
        """Take set ``j``'s share; ``index``: the sample's images of a set of the whole split."""
        if index is not None and len(shifted) != len(self.id_set):
            shifted = shifted.subset(index)
        if shifted.images.shape != self.id_set.images.shape:
            from oodbench.errors import UserError

            raise UserError(f"shifted set {shifted.name} has images of shape "
                            f"{tuple(shifted.images.shape)}, not the ID test set's "
                            f"{tuple(self.id_set.images.shape)}; rebuild it")  # fmt: skip
        self.images[j :: self.k] = shifted.images[j :: self.k]
        self.meta.append(shifted.name)

    def imageset(self) -> ImageSet:
        from dataclasses import replace

        return replace(self.id_set, images=self.images, name=f"{self.id_set.name}-{MIX}",
                       meta={"shifted_mix": self.meta})  # fmt: skip


def track(run: Any, detectors: list[Any], writer: Any, base: dict[str, Any], id_set: ImageSet,
          score: ScoreFn, load: Callable[[str], ImageSet]
          ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:  # fmt: skip
    """Write shift.csv and queue failure.csv's rows; return each detector's scores on the
    shifted mix (empty with ``--no-shift`` or without shifted sets) and the ID test images the
    shifted sets sample (their clean half of the FSOOD rows).

    ``score(det, name, data, like)`` is the orchestrator's cached scoring (scores/ files);
    ``load(name)`` loads a shifted set at the ID geometry."""
    from oodbench.scoring import rowfiles as R

    cfg, tc, wh = run.cfg, run.train_cfg, run.model_hash
    head = {k: base[k] for k in R.RUN_COLUMNS} | {"weights_hash": wh}
    id_out = run.outputs(f"{tc.dataset}-test", id_set)
    t = run.dir.read_summary().get("temperature")
    names = shift_names(tc.dataset, cfg.shift_size) if cfg.shift else []
    from oodbench.data import sample_indices

    sample = sample_indices(len(id_set), cfg.shift_size)
    shift_path, fail_path = run.dir.table(R.SHIFT_FILE), run.dir.table(R.FAILURE_FILE)
    done = R.current_keys(shift_path, R.SHIFT_COLUMNS, R.SHIFT_KEY, wh)
    failed = R.current_keys(fail_path, R.FAILURE_COLUMNS, R.FAILURE_KEY, wh)
    if cfg.overwrite:
        done, failed = set(), set()
    rows = [] if (tc.dataset,) in done else [
        head | shift_row(tc.dataset, id_out.logits, id_out.labels, t, clean=True)]  # fmt: skip
    mix = Mix(id_set.subset(sample), len(names))
    for j, name in enumerate(names):
        shifted = load(name)
        if (name,) not in done:
            out = run.outputs(f"{name}-test", shifted)
            rows.append(head | shift_row(name, out.logits, out.labels, t))
            run.drop(f"{name}-test")
        mix.take(j, shifted, sample)
        del shifted
    if rows:
        R.merge_rows(shift_path, rows, R.SHIFT_COLUMNS, R.SHIFT_KEY)
    sets = [(tc.dataset, id_set, correct_of(id_out.logits, id_out.labels))]
    if names:
        mix_set = mix.imageset()
        mix_out = run.outputs(f"{mix_set.name}-test", mix_set)
        sets.append((mix_set.name, mix_set, correct_of(mix_out.logits, mix_out.labels)))
    mixed: dict[str, torch.Tensor] = {}
    for det in detectors:
        for name, data, correct in sets:
            scores = score(det, name, data, None)
            if name != tc.dataset:
                mixed[det.label] = scores
            if (det.label, name) not in failed:
                row = head | {"detector": det.label, "dataset": name, "params": det.params_text}
                writer.submit_failure(row, scores, correct, fail_path)
    return mixed, sample
