"""Unsafe and broken checkpoints: crafted pickles, wrong architectures, truncated weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from _evil import Evil

from oodbench.cli import main
from oodbench.errors import UserError
from oodbench.models import create_model
from oodbench.models.weights import load_run, weights_bytes
from oodbench.train.checkpoint import load_state


@pytest.fixture()
def run(trained_run: Path, tmp_path: Path) -> Path:
    """A private copy of the shared trained run, at ``tmp_path/r``."""
    return Path(shutil.copytree(trained_run, tmp_path / "r"))


def test_the_evil_pickle_really_is_evil(tmp_path: Path) -> None:
    # guard: prove the payload would run with a plain (unsafe) load, so the refusal means something
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"epoch": 1, "weights": Evil(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_malicious_train_state_is_refused_and_never_runs(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    run: Path, change: dict[str, object], named: str
) -> None:
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | change))
    with pytest.raises(UserError) as err:
        load_run(run)
    assert "small_cnn with 10 classes" in str(err.value) and named in str(err.value)


def test_weights_from_another_model_are_refused(run: Path) -> None:
    arch = {"model": "resnet10t", "num_classes": 10, "in_chans": 1, "img_size": [28, 28]}
    other = create_model("resnet10t", 10, 1)
    (run / "model.safetensors").write_bytes(weights_bytes(other, arch))
    with pytest.raises(UserError, match="resnet10t .*small_cnn"):
        load_run(run)


@pytest.mark.parametrize("cut", [0, 7, 100, -10])
def test_truncated_weights_are_refused(run: Path, cut: int) -> None:
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[:cut])
    with pytest.raises(UserError, match="model.safetensors"):
        load_run(run)


def test_truncated_train_state_is_refused(run: Path) -> None:
    data = (run / "train_state.pt").read_bytes()
    (run / "train_state.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="train_state.pt"):
        load_state(run)
