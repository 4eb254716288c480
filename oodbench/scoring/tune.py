"""Choices on validation data only: the validation OOD sets, ``--tune``, and validation metrics.

``choose`` is the one selection step of ``oodbench score``. It reads the run's fit split (to
fit detectors), its ID validation split and the validation OOD sets, never a test set: the ID
test split and the test OOD sets are loaded after it returns (``tests/test_fair_protocol.py``
makes every test set unreadable during this step). It returns the detectors to score, with
each tunable one set to the grid point of highest mean AUROC over the validation OOD sets
(ID validation split vs each set, as OpenOOD v1.5's automatic parameter search), and every
detector's validation metrics, which the bench uses to pick its headline detector.

Cached detectors tune from the cached outputs (each validation set is extracted once, then
every grid point reads it); ODIN reruns the one loaded model per grid point. For speed the
search reads a seeded sample of at most ``TUNE_ID`` ID validation images and ``TUNE_OOD``
images per validation OOD set.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from oodbench import metrics
from oodbench.config import ScoreConfig, split_param
from oodbench.data.imageset import ImageSet
from oodbench.detectors import Detector
from oodbench.errors import UserError
from oodbench.models.outputs import Outputs
from oodbench.scoring.extract import batches
from oodbench.scoring.inputs import load_dataset

CRITERION = "auroc"  # threshold-free, as OpenOOD's search; FPR95 reads one point of the curve
TUNE_ID, TUNE_OOD, TUNE_SEED = 2000, 1000, 20_240_012
# Held-out real images tuned better than noise in the study (docs/results.md, "Which validation
# data tunes best"); without any of them installed, the default falls back to noise. DEFAULT is
# the token that stands for that choice (what `bench` passes when --val-ood is not given).
DEFAULT_VAL, FALLBACK_VAL, DEFAULT = "real", "noise", "default"


def val_names(cfg: ScoreConfig, id_name: str, test_names: Sequence[str]) -> list[str]:
    """The validation OOD sets of this score call ([] when nothing is chosen or reported on
    validation data): ``--val-ood`` names or groups (noise, real, noise+real), default
    ``DEFAULT_VAL`` (else ``FALLBACK_VAL``) less any set given to ``--ood``. A set given to both
    is an error."""
    from pathlib import Path

    from oodbench.data import DATASETS, VAL_GROUPS

    if not (cfg.tune or cfg.val_ood):
        return []
    root = Path(cfg.root) if cfg.root else None

    def expand(chosen: Sequence[str]) -> list[str]:
        names: list[str] = []
        for name in chosen:
            group = VAL_GROUPS.get(name)
            found = [n for n in group if DATASETS.get(n).available(root)] if group else [name]
            names += [n for n in found if n not in names]
        return names

    names: list[str] = []
    for name in cfg.val_ood or (DEFAULT,):
        if name != DEFAULT:
            names += [n for n in expand([name]) if n not in names]
            continue
        # the default gives way to a set the user asked to test on
        chosen = [n for n in expand([DEFAULT_VAL]) if n not in test_names]
        if not chosen:  # no held-out real images here (no `make data`): the paper's noise
            chosen = [n for n in expand([FALLBACK_VAL]) if n not in test_names]
        names += [n for n in chosen if n not in names]
    for name in names:
        DATASETS.get(name)  # unknown names: a close-match suggestion
        if name == id_name:
            raise UserError(f"--val-ood {name} is the run's ID dataset; choose another set")
        if name in test_names:
            raise UserError(
                f"{name} is asked for as both a validation set (--val-ood) and a test set "
                "(--ood); a set plays one role: drop it from one of them"
            )
    if not names:
        raise UserError("no validation OOD set is available; run 'make data' or pass --val-ood")
    return names


@dataclass
class ValData:
    """The validation sample: ID validation outputs and images, and per validation OOD set."""

    id_out: Outputs
    id_images: ImageSet
    ood: dict[str, tuple[Outputs, ImageSet]] = field(default_factory=dict)


@dataclass
class Selection:
    """What ``choose`` decided: the detectors to score, the values picked per detector label,
    and validation metrics (percent) per detector label."""

    detectors: list[Detector]
    tuned: dict[str, str] = field(default_factory=dict)
    validation: dict[str, dict[str, float]] = field(default_factory=dict)
    val_sets: list[str] = field(default_factory=list)


def _sample(n: int, cap: int, salt: int) -> torch.Tensor:
    rng = np.random.default_rng(TUNE_SEED + salt)
    return torch.from_numpy(np.sort(rng.choice(n, size=min(n, cap), replace=False)))


def load_validation(run: Any, names: Sequence[str], val: ImageSet | None) -> ValData:
    """Extract (or read from the cache) the ID validation split and each validation OOD set
    once, and draw the seeded tuning sample of each."""
    if val is None:
        raise UserError("choosing on validation data needs the run's ID validation split: "
                        "train with --val-size > 0")  # fmt: skip
    tc = run.train_cfg
    id_out = run.outputs(f"{tc.dataset}-val", val)
    pick = _sample(len(val), TUNE_ID, 0)
    data = ValData(id_out.subset(pick), val.subset(pick))
    geometry = (val.channels, *val.size)
    for i, name in enumerate(names, 1):
        ood_set = load_dataset(run.cfg, tc, name, "test", geometry=geometry, seen=run.datasets)
        # Only the sample is extracted (cache key <set>-tune): the search and the validation
        # metrics read nothing else, and a validation set is never scored as a test set.
        sample = ood_set.subset(_sample(len(ood_set), TUNE_OOD, i))
        data.ood[name] = (run.outputs(f"{name}-tune", sample, val), sample)
        run.drop(f"{name}-tune")
        del ood_set
    return data


def explicit_params(cfg: ScoreConfig) -> set[tuple[str, str]]:
    """(detector, name) pairs the user set (``--param``, ``--k``, ``--temperature``): kept."""
    found = {split_param(text)[:2] for text in cfg.params}
    if cfg.k is not None:
        found.add(("*", "k"))
    if cfg.temperature is not None:
        found.add(("*", "temperature"))
    return found


def grid_of(det: Detector, explicit: set[tuple[str, str]]) -> dict[str, tuple[Any, ...]]:
    """The declared grids of ``det``'s hyperparameters that the user did not set."""
    return {
        name: p.grid
        for name, p in det.params().items()
        if len(p.grid) > 1 and (det.name, name) not in explicit and ("*", name) not in explicit
    }


def candidates(det: Detector, grid: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Every grid point, the detector's current values first (they win ties)."""
    current = {k: getattr(det, k) for k in grid}
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    return [current] + [p for p in points if p != current]


def evaluate(
    det: Detector, run: Any, data: ValData, positive: str, fit: Callable[[str], Outputs]
) -> dict[str, float]:
    """Mean (over the validation OOD sets) AUROC and FPR95 in percent, plus each set's."""
    if det.needs_fit and not det.fitted:
        det.fit(fit(getattr(det, "fit_split", "train")))
    id_scores = _scores(det, run, data.id_out, data.id_images)
    per = {}
    for name, (out, images) in data.ood.items():
        per[name] = metrics.fast_metrics(id_scores, _scores(det, run, out, images, data.id_images),
                                        positive)  # fmt: skip
    result = {k: 100 * float(np.mean([m[k] for m in per.values()])) for k in ("auroc", "fpr95")}
    result.update({f"{name}_auroc": 100 * m["auroc"] for name, m in per.items()})
    return result


def _scores(
    det: Detector, run: Any, out: Outputs, images: ImageSet, like: ImageSet | None = None
) -> torch.Tensor:
    if "model" not in det.needs:
        return det.score(out).to(torch.float64)
    scores = torch.empty(len(images), dtype=torch.float64)  # ODIN: the loaded model, batched
    for start, chunk in batches(images, run.cfg.batch_size, like):
        scores[start : start + len(chunk)] = det.score_inputs(run.model, chunk.images, run.mean,
                                                              run.std)  # fmt: skip
    return scores


def tune_one(
    det: Detector, run: Any, data: ValData, cfg: ScoreConfig, fit: Callable[[str], Outputs],
    explicit: set[tuple[str, str]],
) -> tuple[Detector, dict[str, float], bool]:  # fmt: skip
    """The best grid point of ``det`` (a new, fitted detector), its metrics, and whether a
    search ran (False: no grid, and ``det`` itself is evaluated)."""
    grid = grid_of(det, explicit) if cfg.tune else {}
    if not grid:
        return det, evaluate(det, run, data, cfg.positive, fit), False
    best: tuple[Detector, dict[str, float]] | None = None
    for point in candidates(det, grid):
        try:
            trial = type(det)(**{**det.hyperparams, **point})
            result = evaluate(trial, run, data, cfg.positive, fit)
        except UserError:  # a grid point this model cannot take (ViM dim >= D, k > N)
            continue
        if best is None or result[CRITERION] > best[1][CRITERION]:
            best = (trial, result)
    if best is None:
        raise UserError(f"--tune: no grid point of {det.name} works on this run")
    best[0].tuned = True
    return best[0], best[1], True


def choose(run: Any, detectors: list[Detector], names: Sequence[str], val: ImageSet | None,
           fit: Callable[[str], Outputs]) -> Selection:  # fmt: skip
    """The selection step: tune (``--tune``) and measure every detector on validation data."""
    selection = Selection(list(detectors), val_sets=list(names))
    if not names:
        return selection
    data = load_validation(run, names, val)
    explicit = explicit_params(run.cfg)
    chosen: list[Detector] = []
    for det in detectors:
        det, result, searched = tune_one(det, run, data, run.cfg, fit, explicit)
        chosen.append(det)
        selection.validation[det.label] = result
        if searched:
            selection.tuned[det.label] = det.params_text
    selection.detectors = chosen
    return selection
