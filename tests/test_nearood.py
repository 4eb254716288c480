"""The near-OOD track: Fashion-MNIST known/unknown class splits, their roles, and scoring."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from _cli import SCORE, TRAIN

from oodbench.cli import main
from oodbench.data import DATASETS
from oodbench.data.registry import LoadRequest
from oodbench.data.sources.classsplit import DEFAULT_UNKNOWN, SPLIT_SEEDS, unknown_classes
from oodbench.scoring.inputs import default_ood


def load(name: str, split: str = "test"):
    return DATASETS.get(name).loader(LoadRequest(split, None, False))


def test_default_split_partitions_the_test_set() -> None:
    base, known, unknown = (
        load("fashion-mnist"),
        load("fashion-mnist-known6"),
        load("fashion-mnist-unknown4"),
    )
    assert len(known) + len(unknown) == len(base)
    assert known.num_classes == 6 and sorted(known.labels.unique().tolist()) == list(range(6))
    assert (unknown.labels == -1).all()
    held_out = torch.isin(base.labels, torch.tensor(DEFAULT_UNKNOWN))
    assert torch.equal(unknown.images, base.images[held_out])
    # known labels are the original classes remapped in ascending order
    kept = [c for c in range(10) if c not in DEFAULT_UNKNOWN]
    assert torch.equal(known.images[known.labels == 0], base.images[base.labels == kept[0]])


def test_validation_near_ood_comes_from_training_images_only() -> None:
    val, test = DATASETS.get("fashion-mnist-unknown4-val"), DATASETS.get("fashion-mnist-unknown4")
    assert (val.ood_role, test.ood_role) == ("validation", "test")
    assert val.near_of == test.near_of == "fashion-mnist-known6"
    train_base = load("fashion-mnist", "train")
    held_out = torch.isin(train_base.labels, torch.tensor(DEFAULT_UNKNOWN))
    assert torch.equal(load("fashion-mnist-unknown4-val").images, train_base.images[held_out])


def test_seeded_splits_are_reproducible_and_distinct() -> None:
    draws = [unknown_classes(s) for s in SPLIT_SEEDS]
    assert draws == [unknown_classes(s) for s in SPLIT_SEEDS]
    assert all(len(set(d)) == 4 for d in draws) and len(set(draws)) == len(draws)
    for seed, draw in zip(SPLIT_SEEDS, draws, strict=True):
        assert load(f"fashion-mnist-unknown4-s{seed}").meta["unknown_classes"] == list(draw)


def test_near_ood_set_of_another_id_set_is_refused(scored_run: Path, capsys) -> None:
    # the shared run trains on all of Fashion-MNIST: its "unknown" classes are ID classes there
    argv = ["score", str(scored_run), "-d", "msp", "--ood", "fashion-mnist-unknown4", *SCORE]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "near-OOD only for a model trained on" in err


def test_default_ood_of_a_near_track_model_includes_its_near_set_only() -> None:
    near = default_ood(None, "fashion-mnist-known6")
    assert near[0] == "fashion-mnist-unknown4" and "mnist-5k" in near
    assert not any(
        n.startswith("fashion-mnist-unknown4") for n in default_ood(None, "fashion-mnist")
    )


@pytest.mark.slow  # tens of seconds: CI runs it in the slow pass
def test_near_track_trains_scores_and_reports_near_and_far_apart(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    argv = ["train", "--dataset", "fashion-mnist-known6", "--epochs", "1", *TRAIN]
    assert main([*argv, "--runs-dir", str(runs), "--name", "near"]) == 0
    ood = ["--ood", "fashion-mnist-unknown4", "--ood", "mnist-5k"]
    assert main(["score", str(runs / "near"), "-d", "msp", *ood, *SCORE]) == 0
    rows = pd.read_csv(runs / "near" / "metrics.csv")
    assert set(rows.ood_dataset) == {"fashion-mnist-unknown4", "mnist-5k"}
    assert set(rows.n_ood[rows.ood_dataset == "fashion-mnist-unknown4"]) == {4000}
    texts = {}
    for fmt in ("markdown", "json", "csv", "rich"):
        out = tmp_path / f"report.{fmt}"
        assert main(["report", str(runs / "near"), "-f", fmt, "--out", str(out)]) == 0
        texts[fmt] = out.read_text(encoding="utf-8")
    for fmt in ("markdown", "json", "rich"):
        assert "Near-OOD average" in texts[fmt] and "Far-OOD average" in texts[fmt], fmt
    assert "Near-OOD average: mean over fashion-mnist-unknown4." in texts["markdown"]
    table = pd.read_csv(tmp_path / "report.csv")
    tracks = dict(zip(table.ood_dataset, table.track, strict=False))
    assert tracks == {"fashion-mnist-unknown4": "near", "mnist-5k": "far"}


def test_bench_tracks_are_checked_and_laid_out() -> None:
    import pytest

    from oodbench.bench.runner import plan
    from oodbench.config import BenchConfig
    from oodbench.errors import UserError

    near_cifar = {"tracks": ("near",), "preset": "paper-cifar10", "tune": False}
    for bad in ({"tracks": ("mid",)}, {"tracks": ()}):
        with pytest.raises(UserError):
            BenchConfig(**bad, tune=False)
    # CIFAR's near-OOD sets are other datasets (config.NEAR_SETS): the far runs score them
    assert {s.track for s in plan(BenchConfig(**near_cifar | {"tracks": ("far", "near")}))} == {
        "far"
    }
    assert {s.track for s in plan(BenchConfig(**near_cifar))} == {"near"}  # the near track alone
    stages = plan(BenchConfig(tracks=("far", "near"), out="o", tune=False))
    near = [s for s in stages if s.track == "near"]
    assert {s.train.dataset for s in near} == {"fashion-mnist-known6"}
    assert {s.run_dir.parts[1] for s in stages} == {"far", "near"}
