"""--tune: grid points, what the user set stays set, the AUROC-best point wins, labels."""

from __future__ import annotations

import torch

from oodbench import detectors, metrics
from oodbench.config import ScoreConfig
from oodbench.data.imageset import ImageSet
from oodbench.models.outputs import Outputs
from oodbench.scoring import tune


def _outputs(logits: torch.Tensor) -> Outputs:
    return Outputs(logits=logits, features=logits.abs(), labels=torch.zeros(len(logits)).long())


def _images(n: int) -> ImageSet:
    return ImageSet(
        torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.zeros(n).long(), "toy", 0, (0.5,), (0.25,)
    )


def _val_data() -> tune.ValData:
    g = torch.Generator().manual_seed(0)
    id_logits = torch.randn(300, 10, generator=g) * 3
    id_logits[:, 0] += 6  # confident ID
    near = torch.randn(200, 10, generator=g) * 3  # diffuse OOD
    far = torch.randn(200, 10, generator=g) * 3
    far[:, 1] += 4
    data = tune.ValData(_outputs(id_logits), _images(300))
    data.ood = {"a": (_outputs(near), _images(200)), "b": (_outputs(far), _images(200))}
    return data


def test_candidates_put_the_current_values_first_and_cover_the_grid() -> None:
    det = detectors.create("gen")
    grid = tune.grid_of(det, set())
    points = tune.candidates(det, grid)
    assert points[0] == {"gamma": 0.1, "m": 100}
    assert len(points) == len(grid["gamma"]) * len(grid["m"])
    assert len({tuple(p.items()) for p in points}) == len(points)


def test_values_the_user_set_are_not_tuned() -> None:
    cfg = ScoreConfig(detectors=("knn", "energy", "react"), params=("react.percentile=80",),
                      k=7)  # fmt: skip
    explicit = tune.explicit_params(cfg)
    assert tune.grid_of(detectors.create("react"), explicit) == {}
    assert tune.grid_of(detectors.create("knn"), explicit) == {}
    assert "temperature" in tune.grid_of(detectors.create("energy"), explicit)
    assert tune.grid_of(detectors.create("msp"), set()) == {}  # no grid, nothing to tune


def test_tuning_picks_the_grid_point_of_highest_mean_validation_auroc() -> None:
    data = _val_data()
    cfg = ScoreConfig(detectors=("energy",), tune=True)
    chosen, result, searched = tune.tune_one(detectors.create("energy"), None, data, cfg,
                                             lambda split: data.id_out, set())  # fmt: skip
    assert searched and chosen.tuned and chosen.label == "energy[tuned]"
    by_t = {}
    for t in detectors.DETECTORS.get("energy").params()["temperature"].grid:
        det = detectors.create("energy", temperature=t)
        ids = det.score(data.id_out)
        by_t[t] = sum(metrics.auroc(ids, det.score(o)) for o, _ in data.ood.values()) / 2
    assert chosen.temperature == max(by_t, key=lambda t: (by_t[t], t == 1.0))
    assert abs(result["auroc"] - 100 * by_t[chosen.temperature]) < 1e-9
    assert chosen.params_text == f"temperature={chosen.temperature:g}"


def test_without_tune_the_detector_is_only_measured_on_validation_data() -> None:
    data = _val_data()
    det = detectors.create("energy")
    cfg = ScoreConfig(detectors=("energy",))
    same, result, searched = tune.tune_one(det, None, data, cfg, lambda split: data.id_out, set())
    assert same is det and not searched and same.label == "energy"
    assert set(result) >= {"auroc", "fpr95", "a_auroc", "b_auroc"}
