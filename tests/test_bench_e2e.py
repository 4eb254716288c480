"""bench end to end on tiny data: report, headline, resume per (detector, OOD set), presets."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _cli import BENCH

from oodbench.cli import main
from oodbench.config import OFFLINE_TAU


def test_offline_bench_reports_then_resumes_only_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    sets = ["--ood", "mnist-5k", "--val-ood", "gaussian"]  # one test set, one validation set
    assert main(["bench", "--out", str(out), "-d", "msp", *sets, *BENCH]) == 0
    headline = capsys.readouterr().out
    assert "MSP FPR95" in headline and "LogitNorm" in headline
    report = (out / "report.md").read_text()
    assert "CE" in report and f"LogitNorm τ={OFFLINE_TAU:g}" in report
    assert (out / "plots" / "scores_msp.png").stat().st_size > 5000
    weights = (out / "ce" / "model.safetensors").read_bytes()

    # A second bench with the same --out must be told to --resume.
    argv = ["bench", "--out", str(out), "-d", "msp", "-d", "energy", *sets, *BENCH]
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err

    # A run killed before its first checkpoint (config.json only) is started again by --resume.
    for name in ("train_state.pt", "model.safetensors", "metrics.csv"):
        (out / "logitnorm" / name).unlink()
    assert main([*argv, "--resume"]) == 0
    assert (out / "ce" / "model.safetensors").read_bytes() == weights  # not retrained
    assert (out / "logitnorm" / "model.safetensors").is_file()
    metrics = pd.read_csv(out / "logitnorm" / "metrics.csv")
    assert sorted(metrics["detector"]) == ["energy[tuned]", "msp"]  # bench tunes by default
    assert set(metrics["protocol"]) == {"paper"} and set(metrics["convention"]) == {"id-positive"}

    # A resume that finds every row and validation result in place re-tunes nothing: the
    # scored runs' files are not rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")}
    assert main([*argv, "--resume"]) == 0
    assert stamps and all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def _fake_cifar10(root: Path, n_train: int, n_test: int) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [
        *((f"data_batch_{i}", n_train // 5) for i in range(1, 6)),
        ("test_batch", n_test),
    ]:
        labels = list(rng.integers(0, 10, n))
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        (folder / name).write_bytes(pickle.dumps({"labels": labels, "data": data}, protocol=2))


def _fake_cifar100_test(root: Path, n: int) -> None:
    """``cifar-100-python/test`` as the release writes it (fine and coarse labels)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             "fine_labels": list(rng.integers(0, 100, n)),
             "coarse_labels": list(rng.integers(0, 20, n))}  # fmt: skip
    (folder / "test").write_bytes(pickle.dumps(batch, protocol=2))


def _fake_svhn(root: Path, n: int) -> None:
    from scipy.io import savemat

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    savemat(root / "test_32x32.mat", {"X": x, "y": rng.integers(1, 11, (n, 1))})


@pytest.mark.slow  # tens of seconds: CI runs it in the slow pass
def test_paper_cifar10_preset_dry_run_on_fixture_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oodbench.scoring import tune

    monkeypatch.setattr(tune, "TUNE_OOD", 64)  # WRN-40-2 on 1,000 noise images: 20 s of CPU
    root = tmp_path / "data"
    _fake_cifar10(root, n_train=400, n_test=40)
    _fake_svhn(root, 30)
    _fake_cifar100_test(root, 30)
    out = tmp_path / "paper"
    argv = ["bench", "--preset", "paper-cifar10", "--out", str(out), "--root", str(root),
            "-d", "msp", "--ood", "svhn", "--val-ood", "gaussian", "--epochs", "1",
            "--subset", "64", "--val-size", "32", "--device", "cpu", "--quiet",
            "--tracks", "far,near"]  # fmt: skip
    assert main(argv) == 0
    config = (out / "far" / "logitnorm" / "config.json").read_text()
    assert '"wrn_40_2"' in config and '"multistep"' in config and '"cifar10"' in config
    # near-OOD (CIFAR-100, as OpenOOD) is scored on the same runs: no second training
    assert not (out / "near").exists()
    rows = pd.read_csv(out / "far" / "ce" / "metrics.csv")
    assert sorted(rows["ood_dataset"]) == ["cifar100", "svhn"] and set(rows["n_id"]) == {40}
    report = (out / "far" / "report.md").read_text()
    assert "Near-OOD average" in report and "Far-OOD average" in report
