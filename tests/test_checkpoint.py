"""Unsafe and broken checkpoints: crafted pickles, wrong architectures, truncated weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _evil import Evil

from oodbench.cli import main
from oodbench.errors import UserError
from oodbench.train.checkpoint import load_run, load_state

FAST = ["--subset", "128", "--batch-size", "64", "--val-size", "500", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "--runs-dir", str(runs), "--name", "r", "--epochs", "1", *FAST]) == 0
    return runs / "r"


def _copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_the_evil_pickle_really_is_evil(tmp_path: Path) -> None:
    # guard: prove the payload would run with a plain (unsafe) load, so the refusal means something
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"epoch": 1, "weights": Evil(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_malicious_train_state_is_refused_and_never_runs(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy_run(trained, tmp_path / "r")
    marker = tmp_path / "pwned"
    torch.save({"epoch": 1, "step": 0, "weights": Evil(marker)}, run / "train_state.pt")
    with pytest.raises(UserError, match="refusing .*train_state.pt"):
        load_state(run)
    assert main(["train", "--runs-dir", str(tmp_path), "--name", "r", "--resume", "-q"]) == 2
    assert "refusing" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize(
    "change,named",
    [({"model": "wrn_40_2"}, "wrn_40_2"), ({"num_classes": 100}, "100 classes")],
)
def test_architecture_mismatch_is_refused_naming_both(
    trained: Path, tmp_path: Path, change: dict[str, object], named: str
) -> None:
    run = _copy_run(trained, tmp_path / "r")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | change))
    with pytest.raises(UserError) as err:
        load_run(run)
    assert "small_cnn with 10 classes" in str(err.value) and named in str(err.value)


def test_weights_from_another_model_are_refused(trained: Path, tmp_path: Path) -> None:
    run = _copy_run(trained, tmp_path / "r")
    other = tmp_path / "o"
    args = ["--runs-dir", str(tmp_path), "--name", "o", "--epochs", "1", "--model", "resnet10t"]
    assert main(["train", *args, *FAST]) == 0
    (run / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(UserError, match="resnet10t .*small_cnn"):
        load_run(run)


@pytest.mark.parametrize("cut", [0, 7, 100, -10])
def test_truncated_weights_are_refused(trained: Path, tmp_path: Path, cut: int) -> None:
    run = _copy_run(trained, tmp_path / "r")
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[:cut])
    with pytest.raises(UserError, match="model.safetensors"):
        load_run(run)


def test_truncated_train_state_is_refused(trained: Path, tmp_path: Path) -> None:
    run = _copy_run(trained, tmp_path / "r")
    data = (run / "train_state.pt").read_bytes()
    (run / "train_state.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="train_state.pt"):
        load_state(run)


def test_load_run_gives_the_scoring_facts(trained: Path) -> None:
    model, cfg, info = load_run(trained)
    assert cfg.model == "small_cnn" and info["img_size"] == [28, 28]
    assert info["mean"] == [pytest.approx(0.286)] and len(info["val_indices"]) == 500
    assert info["epochs_done"] == 1 and len(info["weights_sha256"]) == 64
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
