"""The paper presets follow the paper (issue 12 item 4): every training image, KNN's k per
dataset as the KNN paper, and a clear refusal when --tune would have no ID validation split."""

from __future__ import annotations

from pathlib import Path

import pytest

from oodbench.config import BenchConfig
from oodbench.errors import UserError
from oodbench.train.options import build_config


@pytest.mark.parametrize("preset", ["paper-cifar10", "paper-cifar100"])
def test_paper_presets_train_on_every_image(tmp_path: Path, preset: str) -> None:
    assert build_config({}, preset, False, tmp_path, None).val_size == 0
    assert build_config({"val_size": 5000}, preset, False, tmp_path, None).val_size == 5000
    assert BenchConfig(preset=preset, tune=False).train_config().val_size == 0
    assert BenchConfig(preset=preset, val_size=5000).train_config().val_size == 5000
    with pytest.raises(UserError, match="--no-tune"):
        BenchConfig(preset=preset)  # tune on, nothing held out to tune on


def test_offline_preset_keeps_its_validation_split() -> None:
    assert BenchConfig().train_config().val_size == 5000


def test_knn_k_follows_the_knn_paper_per_dataset_and_typed_params_win() -> None:
    assert "knn.k=50" in BenchConfig(preset="paper-cifar10", tune=False).detector_params()
    assert "knn.k=200" in BenchConfig(preset="paper-cifar100", tune=False).detector_params()
    typed = BenchConfig(preset="paper-cifar100", tune=False, params=("knn.k=7",))
    assert typed.detector_params() == ("knn.k=7",)
    assert BenchConfig().detector_params() == ()
    # a preset default for a detector that is not run is not passed on
    assert (
        BenchConfig(preset="paper-cifar10", tune=False, detectors=("msp",)).detector_params() == ()
    )


@pytest.mark.parametrize("preset", ["paper-cifar10", "paper-cifar100"])
def test_train_preset_gives_each_loss_its_own_tau_as_bench_does(
    tmp_path: Path, preset: str
) -> None:
    """A preset's tau (0.04) is LogitNorm's: `train --preset P --loss L` trains L with the tau
    `bench --preset P --losses L` gives it (issue 23), unless --tau is typed."""
    from oodbench.bench.plan import _runs_for
    from oodbench.losses import configure

    bench = BenchConfig(preset=preset, tune=False, losses=("logitnorm", "t2fnorm", "ce"))
    runs = {n: configure(c) for n, c in _runs_for(bench, bench.train_config())}  # as trained
    for loss in ("logitnorm", "t2fnorm", "ce"):
        trained = build_config({"loss": loss}, preset, False, tmp_path, None)
        assert trained.loss_params == runs[loss].loss_params, loss
    assert runs["logitnorm"].loss_params == {"tau": 0.04}
    assert runs["t2fnorm"].loss_params == {"tau": 0.1}  # T2FNorm's declared default
    typed = build_config({"loss": "t2fnorm", "tau": 0.2}, preset, False, tmp_path, None)
    assert typed.loss_params == {"tau": 0.2}
    typed = build_config({"loss": "logitnorm", "tau": 0.2}, preset, False, tmp_path, None)
    assert typed.loss_params == {"tau": 0.2}


@pytest.mark.parametrize(
    "preset", ["icons-wrn16", "icons-wrn40", "alnum-wrn16", "icons-cnn", "alnum-cnn"]
)
def test_offline_setting_presets_name_their_recipe(preset: str, monkeypatch) -> None:
    from oodbench.config import Preset

    monkeypatch.setattr(Preset, "check_data", lambda *a: None)  # data or not, the recipe
    cfg = BenchConfig(preset=preset, tracks=("far", "near")).train_config()
    assert cfg.model in ("wrn_16_2", "wrn_40_2", "small_cnn") and "tau" in cfg.loss_params
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size) == (0.1, 0.9, 5e-4, 128)
    assert cfg.flip == (cfg.dataset == "icons-ctx8")  # never mirror characters
    assert build_config({}, preset, False, Path("."), None).dataset == cfg.dataset


def test_alnum_preset_keeps_letters_out_of_its_ood_sets(monkeypatch) -> None:
    from oodbench.config import Preset

    monkeypatch.setattr(Preset, "check_data", lambda *a: None)
    cfg = BenchConfig(preset="alnum-wrn16")
    for name in (*cfg.ood_sets(), *cfg.val_sets()):
        assert not name.startswith(("notmnist", "mnist")) and name != "world-scripts", name


def test_a_setting_preset_without_its_data_names_what_to_install(tmp_path: Path, monkeypatch,
                                                                 capsys) -> None:  # fmt: skip
    from oodbench.cli import main
    from oodbench.data.sources import iconfiles

    monkeypatch.setattr(iconfiles, "ICON_DIR", tmp_path)
    with pytest.raises(UserError, match="needs icons-ctx8.*apt-get install .*papirus-icon-theme"):
        BenchConfig(preset="icons-wrn16")
    assert main(["bench", "--preset", "icons-wrn16", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "apt-get install" in err and "make data" in err and "Traceback" not in err
    with pytest.raises(UserError, match="unknown preset 'icons'"):
        BenchConfig(preset="icons")
