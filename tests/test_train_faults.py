"""Real processes: kill -9 at a random moment, or Ctrl-C, then --resume -> bitwise same weights."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from oodbench.cli import main

ARGS = [
    "--subset",
    "512",
    "--batch-size",
    "64",
    "--val-size",
    "1000",
    "--device",
    "cpu",
    "--loss",
    "logitnorm",
    "--epochs",
    "3",
    "--name",
    "x",
    "-q",
]


def _start(runs: Path) -> subprocess.Popen[str]:
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "oodbench", "train", "--runs-dir", str(runs), *ARGS]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_training(proc: subprocess.Popen[str], run_dir: Path, timeout: float = 120) -> None:
    """config.json is written once the data are loaded, right before the first step."""
    end = time.monotonic() + timeout
    while not (run_dir / "config.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "training never started"
        time.sleep(0.05)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(run_dir / "model.safetensors"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    runs = tmp_path_factory.mktemp("ref")
    assert main(["train", "--runs-dir", str(runs), *ARGS]) == 0
    return _weights(runs / "x")


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from uninterrupted"


@pytest.mark.slow  # three trainings in fresh processes: ~40-70 s on a busy 2-core machine
def test_sigkill_at_a_random_moment_then_resume(
    tmp_path: Path, reference: dict[str, torch.Tensor]
) -> None:
    proc = _start(tmp_path)
    _wait_for_training(proc, tmp_path / "x")
    time.sleep(random.uniform(0.0, 4.0))
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert main(["train", "--runs-dir", str(tmp_path), "--name", "x", "--resume", "-q"]) == 0
    _assert_same(reference, _weights(tmp_path / "x"))
    assert not list((tmp_path / "x").glob(".*.tmp")), "a temporary file was left behind"
    assert killed or proc.returncode == 0


@pytest.mark.slow  # the fast in-process variant is tests/test_train.py::test_interrupted_*
def test_sigint_checkpoints_exits_130_and_prints_resume(
    tmp_path: Path, reference: dict[str, torch.Tensor]
) -> None:
    proc = _start(tmp_path)
    _wait_for_training(proc, tmp_path / "x")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    resume = f"oodbench train --resume --runs-dir {tmp_path} --name x --epochs 3"
    assert resume in err and "Traceback" not in err
    assert (tmp_path / "x" / "train_state.pt").exists()
    argv = resume.split()[1:] + ["-q"]
    assert main(argv) == 0
    _assert_same(reference, _weights(tmp_path / "x"))
