"""Extraction sharded over 2 gloo processes equals single-process extraction, bit for bit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given
from hypothesis import strategies as st

from oodbench.cli import main
from oodbench.data.imageset import ImageSet
from oodbench.models import create_model
from oodbench.parallel import Dist
from oodbench.scoring.extract import extract, read_outputs
from oodbench.scoring.sharded import extract_sharded, shard_rows

MEAN, STD = (0.5,), (0.25,)


@given(st.integers(1, 5000), st.integers(1, 700), st.integers(1, 6))
def test_shards_are_contiguous_whole_batches_covering_every_row(
    n: int, batch: int, world: int
) -> None:
    rows = [shard_rows(n, batch, r, world) for r in range(world)]
    assert [i for r in rows for i in r] == list(range(n))  # in order, no gap, no overlap
    for r in rows:
        if len(r):
            assert r.start % batch == 0  # a shard starts where a single process's batch does
    counts = [-(-len(r) // batch) for r in rows]
    assert max(counts) - min(counts) <= 1  # batches spread evenly
    assert counts == sorted(counts, reverse=True) and len(rows[0]) > 0  # rank 0 is never idle


def _images(n: int, channels: int, side: int, seed: int) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (n, channels, side, side), generator=g, dtype=torch.uint8)
    return ImageSet(images=pixels, labels=torch.arange(n) % 10, name=f"toy{n}", num_classes=10,
                    mean=MEAN * channels, std=STD * channels)  # fmt: skip


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("small_cnn", 10, 1)
    model.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them is exercised
        model(torch.randn(64, 1, 28, 28) * 2 + 0.3)
    return model.eval()


# (n images, batch size, OOD set of another geometry adapted batch by batch)
CASES = [(300, 64, False), (50, 64, False), (130, 32, True)]


def _case_data(n: int, adapted: bool) -> tuple[ImageSet, ImageSet | None]:
    if not adapted:
        return _images(n, 1, 28, n), None
    return _images(n, 3, 32, n), _images(2, 1, 28, 0)


def _worker(rank: int, world: int, store: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    ctx = Dist(rank=rank, world=world, device=torch.device("cpu"))
    model = _model()
    for i, (n, batch, adapted) in enumerate(CASES):
        data, like = _case_data(n, adapted)
        out = extract_sharded(ctx, model, data, MEAN, STD, batch, like)
        assert (out is not None) == (rank == 0)
        if out is not None:
            torch.save({"logits": out.logits, "features": out.features, "labels": out.labels},
                       os.path.join(out_dir, f"case{i}.pt"))  # fmt: skip
    dist.destroy_process_group()


@pytest.mark.slow  # tens of seconds: CI runs it in the slow pass
def test_two_gloo_processes_give_exactly_the_single_process_outputs(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers (and under torchrun: OMP_NUM_THREADS=1)
    try:
        model = _model()
        for i, (n, batch, adapted) in enumerate(CASES):
            data, like = _case_data(n, adapted)
            single = extract(model, data, MEAN, STD, batch, like)
            sharded = torch.load(tmp_path / f"case{i}.pt", weights_only=True)
            assert torch.equal(sharded["logits"], single.logits), f"case {i}"
            assert torch.equal(sharded["features"], single.features), f"case {i}"
            assert torch.equal(sharded["labels"], single.labels), f"case {i}"
    finally:
        torch.set_num_threads(threads)


def test_one_rank_world_is_plain_extraction() -> None:
    ctx = Dist(rank=0, world=1, device=torch.device("cpu"))
    data, _ = _case_data(40, False)
    out = extract_sharded(ctx, _model(), data, MEAN, STD, 16)
    assert out is not None and len(out) == 40


@pytest.mark.slow  # scores the shared tiny run with 1 and with 2 torchrun processes
def test_torchrun_score_writes_the_single_process_cache(trained_run: Path, tmp_path: Path) -> None:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    run = Path(shutil.copytree(trained_run, tmp_path / "r"))
    score = ["score", str(run), "--detector", "knn", "--ood", "gaussian", "--device", "cpu",
             "--batch-size", "384", "-q", "--overwrite"]  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process (OMP_NUM_THREADS=1); one start less
    try:
        assert main(score) == 0
    finally:
        torch.set_num_threads(threads)
    single = {p.name: read_outputs(p) for p in sorted((run / "cache").glob("*.safetensors"))}
    metrics = (run / "metrics.csv").read_text()
    for p in (run / "cache").glob("*.safetensors"):
        p.unlink()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", "-m", "oodbench"]  # fmt: skip
    proc = subprocess.run([*torchrun, *score], env=env, timeout=600, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded = {p.name: read_outputs(p) for p in sorted((run / "cache").glob("*.safetensors"))}
    assert sorted(sharded) == sorted(single) and len(single) >= 3  # test, val, train, gaussian
    for name, out in single.items():
        assert torch.equal(sharded[name].logits, out.logits), name
        assert torch.equal(sharded[name].features, out.features), name
    assert (run / "metrics.csv").read_text() == metrics
    assert proc.stdout.count("knn") == 1  # rank 1 printed no table
