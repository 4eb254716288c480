"""DDP on CPU: two gloo processes under torchrun train one run; each rank trains on its own
shard, together on every image once per epoch; only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from _cli import BATCH, SUBSET

from oodbench.config import TrainConfig
from oodbench.models.weights import load_run
from oodbench.parallel import Dist
from oodbench.train.plan import epoch_plan

PROBE = Path(__file__).parent / "_ddp_probe.py"


@pytest.mark.parametrize(("n", "world"), [(256, 2), (100, 3)])
def test_epoch_plan_gives_each_rank_a_disjoint_shard(n: int, world: int) -> None:
    """The plan alone (no processes): shards are disjoint, equal, and cover all but n % world
    images; the augmentation draw of an image does not depend on the rank that takes it."""
    cfg, cpu = TrainConfig(), torch.device("cpu")
    single = dict(
        zip(*(t.tolist() for t in epoch_plan(cfg, 3, n, Dist(0, 1, cpu))[:2]), strict=True)
    )
    shards = [epoch_plan(cfg, 3, n, Dist(rank, world, cpu)) for rank in range(world)]
    indices = [s[0].tolist() for s in shards]
    assert all(len(i) == n // world for i in indices)
    union = [i for idx in indices for i in idx]
    assert len(set(union)) == len(union) == n - n % world
    for index, dy, *_ in shards:
        assert all(single[i] == d for i, d in zip(index.tolist(), dy.tolist(), strict=True))
    assert indices[0] != epoch_plan(cfg, 4, n, Dist(0, world, cpu))[0].tolist()  # reshuffled


@pytest.mark.slow  # two fresh torch processes: ~30 s idle, 80 s on a busy 2-core machine
def test_two_process_gloo_run(tmp_path: Path) -> None:
    runs, probe = tmp_path / "runs", tmp_path / "probe"
    probe.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(PROBE), str(probe), "train", "--runs-dir", str(runs), "--name", "ddp",
           "--subset", str(SUBSET), "--batch-size", str(BATCH), "--val-size", "500",
           "--epochs", "2", "--device", "cpu", "-q"]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = runs / "ddp"
    assert sorted(p.name for p in runs.iterdir()) == ["ddp"]  # rank 1 wrote nothing else
    config = json.loads((run_dir / "config.json").read_text())
    assert config["world_size"] == 2
    # every training image was stepped on once per epoch, each by exactly one rank
    seen = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [sorted(s) for s in seen] == [["0", "1"], ["0", "1"]]
    for epoch in ("0", "1"):
        a, b = seen[0][epoch], seen[1][epoch]
        assert len(a) == len(b) == SUBSET // 2 and not set(a) & set(b)
        assert sorted(a + b) == list(range(SUBSET))
    assert seen[0]["0"] != seen[0]["1"]  # a new permutation each epoch
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == [1, 2] and history["train_loss"].notna().all()
    model, cfg, info = load_run(run_dir)
    assert cfg.epochs == 2 and info["epochs_done"] == 2
    assert not list(run_dir.glob(".*.tmp"))
