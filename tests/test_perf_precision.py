"""--precision: fp32 stays the CPU default and bitwise as before; bf16 autocast where native,
a one-line error elsewhere; bf16 extraction keeps its own cache files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _cli import TINY

from oodbench.cli import main
from oodbench.config import ScoreConfig, TrainConfig
from oodbench.data import ImageSet
from oodbench.errors import UserError
from oodbench.models import create_model
from oodbench.models import precision as amp
from oodbench.scoring import extract as ex

CPU = torch.device("cpu")
native = pytest.mark.skipif(not amp.cpu_has_native_bf16(), reason="CPU without native bf16")


def test_auto_is_fp32_on_cpu_and_bf16_on_cuda() -> None:
    assert amp.resolve("auto", CPU) == "fp32"
    assert amp.resolve("auto", torch.device("cuda")) == "bf16"
    assert amp.resolve("fp32", CPU) == "fp32"


def test_bf16_without_native_support_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(UserError, match="use --precision fp32"):
        amp.resolve("bf16", CPU)
    args = ["train", "--precision", "bf16", "--runs-dir", "/nonexistent/x", *TINY]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --precision bf16 needs") and "\n" not in err


def test_precision_is_validated_and_old_configs_load_as_auto() -> None:
    with pytest.raises(UserError, match="did you mean 'bf16'"):
        TrainConfig(precision="bf61")
    with pytest.raises(UserError, match="--precision"):
        ScoreConfig(precision="fp16")
    old = {k: v for k, v in TrainConfig().to_json().items() if k != "precision"}  # a 0.1.0 file
    assert TrainConfig.from_json(old).precision == "auto"
    assert TrainConfig(precision="bf16").to_json()["precision"] == "bf16"


def _toy() -> tuple[torch.nn.Module, ImageSet]:
    torch.manual_seed(0)
    model = create_model("small_cnn", 10, 1).eval()
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (96, 1, 28, 28), dtype=torch.uint8, generator=g)
    return model, ImageSet(images, torch.arange(96) % 10, "toy", 10, (0.5,), (0.25,))


@native
def test_bf16_extraction_is_close_to_fp32_and_cached_apart(tmp_path: Path) -> None:
    model, data = _toy()
    mean, std = data.mean, data.std
    fp32 = ex.extract(model, data, mean, std, batch_size=32)
    bf16 = ex.extract(model, data, mean, std, batch_size=32, precision="bf16")
    assert bf16.logits.dtype == torch.float32
    assert not torch.equal(fp32.logits, bf16.logits)  # autocast did run
    scale = fp32.logits.abs().max()
    assert (fp32.logits - bf16.logits).abs().max() < 0.05 * scale
    args = (tmp_path, "toy-test", model, data, mean, std, "h")
    hits = [
        ex.cached_outputs(*args, precision=p)[1] for p in ("fp32", "bf16", "bf16", "fp32", "auto")
    ]
    assert hits == [False, False, True, True, True]  # auto = fp32 on a CPU
    got, _ = ex.cached_outputs(*args, precision="bf16")
    assert torch.equal(got.logits, bf16.logits)


@native
@pytest.mark.slow  # two tiny training runs
def test_bf16_training_runs_under_autocast_and_is_recorded(tmp_path: Path) -> None:
    for p in ("fp32", "bf16"):
        argv = ["train", "--runs-dir", str(tmp_path), "--name", p, "--precision", p, *TINY]
        assert main(argv) == 0
    config = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert config["precision"] == config["precision_resolved"] == "bf16"
    a = (tmp_path / "fp32" / "model.safetensors").read_bytes()
    b = (tmp_path / "bf16" / "model.safetensors").read_bytes()
    assert a != b  # the same seed and data: only the precision differs


def test_channels_last_where_bf16_convolutions_want_it() -> None:
    from oodbench.train.loop import channels_last

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not channels_last(cpu, "fp32")  # NCHW: bitwise what earlier CPU runs trained
    assert channels_last(cpu, "bf16") and channels_last(cuda, "fp32")
