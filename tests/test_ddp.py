"""DDP on CPU: two gloo processes under torchrun train one run; only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from oodbench.train.checkpoint import load_run


@pytest.mark.slow  # two fresh torch processes: ~30 s idle, 80 s on a busy 2-core machine
def test_two_process_gloo_run(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "oodbench",
        "train",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "ddp",
        "--subset",
        "256",
        "--batch-size",
        "64",
        "--val-size",
        "500",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "-q",
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "ddp"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # rank 1 wrote nothing else
    config = json.loads((run_dir / "config.json").read_text())
    assert config["world_size"] == 2
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    # every training image was seen once per epoch across both ranks (256 = 2 ranks x 2 x 64)
    assert history["images_per_s"].gt(0).all() and history["train_loss"].notna().all()
    model, cfg, info = load_run(run_dir)
    assert cfg.epochs == 2 and info["epochs_done"] == 2
    assert not list(run_dir.glob(".*.tmp"))
