"""The benchmark scripts run (tiny modes) and print the figures docs/performance.md quotes."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from oodbench import detectors

ROOT = Path(__file__).resolve().parents[1]
TINY_IMAGES = 512  # benchmarks/gpu_check.py --tiny trains on 512 images


def _module(name: str):  # noqa: ANN202 - a script loaded as a module
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(cmd: list[str]) -> str:
    env = os.environ | {"PYTHON": sys.executable}  # read now: conftest's OODBENCH_NO_SHIFT=1
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_synthetic_cifar_is_cifar_shaped_and_learnable() -> None:
    images, labels = _module("gpu_check").synthetic_cifar(2000, seed=0)
    assert images.shape == (2000, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.min() >= 0 and labels.max() <= 9
    means = torch.stack([images[labels == c].float().mean(dim=(0, 2, 3)) for c in range(10)])
    assert means.std(dim=0).max() > 10  # classes differ in tint: the loss has something to fit


def test_scaling_markdown_table() -> None:
    text = _module("scaling").markdown([{"n": 1, "s": 0.5}, {"n": 20, "s": 1234.5}])
    assert text.splitlines() == ["| n | s |", "|---|---|", "| 1 | 0.50 |", "| 20 | 1,234.50 |"]


@pytest.mark.slow  # 75 s in CI with four losses after CE, before they became two
def test_gpu_check_tiny_on_cpu() -> None:
    cmd = ["bash", "benchmarks/gpu_check.sh", "--tiny", "--device", "cpu", "--no-shift",
           "--losses", "t2fnorm"]  # fmt: skip
    out = _run(cmd)  # one loss after CE of the default four: CI's 20 minutes
    ours = re.search(r"oodbench loop:\s+(\d+) img/s\s+([\d.]+) s/epoch", out)
    book = re.search(r"textbook loop:\s+(\d+) img/s\s+([\d.]+) s/epoch", out)
    ratio = re.search(r"ratio oodbench / textbook: ([\d.]+)x", out)
    rows = re.search(r"warm cache: [\d.]+ s \((\d+) rows\)", out)
    assert ours and book and ratio and rows, out
    img_s, s_epoch = float(ours[1]), float(ours[2])  # printed to 1 img/s and 0.01 s
    assert abs(img_s * s_epoch - TINY_IMAGES) <= 0.005 * img_s + s_epoch, out  # one epoch's images
    assert float(ratio[1]) == pytest.approx(img_s / float(book[1]), rel=0.02)
    every = len(detectors.names(include_aliases=False))  # --detector all: a row per detector
    assert int(rows[1]) == every
    # the losses asked for after CE, each 1 epoch (s/epoch printed), scored with all
    assert "loss elogitnorm" not in out  # --losses replaces the default four
    for loss in ("t2fnorm",):
        line = re.search(rf"loss {loss}: ([\d.]+) s/epoch .* \((\d+) rows\)", out)
        assert line and float(line[1]) > 0 and int(line[2]) == every, out


@pytest.mark.slow  # trains 2 tiny runs, scores one 10 times: 96 s at load 4-5 on 2 cores
def test_scaling_tiny() -> None:
    out = _run([sys.executable, "benchmarks/scaling.py", "--tiny"])
    assert re.search(r"^\| 256 \| [\d.]+ \|", out, re.M), out
    assert re.search(r"^\| 1000 \| [\d.]+ \|", out, re.M), out
    assert re.search(r"^\| 4 \| [\d.]+ \| msp, maxlogit, energy, entropy \|$", out, re.M), out


@pytest.mark.slow  # a few steps of each variant, then two 1-epoch 512-image processes, once
def test_train_throughput_tiny() -> None:
    out = _run([sys.executable, "benchmarks/train_throughput.py", "--subset", "512", "--steps",
                "2", "--rounds", "1", "--epochs", "1", "--process-rounds", "1"])  # fmt: skip
    rows = dict(re.findall(r"^\| (loop \w+|bare \w+|textbook) \| ([\d,]+) \|", out, re.M))
    assert {"loop fp32", "bare fp32", "textbook"} <= set(rows), out
    ips = {k: float(v.replace(",", "")) for k, v in rows.items()}
    ratio = re.search(r"^\| loop fp32 \| [\d,]+ \| ([\d.]+) \|", out, re.M)
    assert ratio and float(ratio[1]) == pytest.approx(ips["loop fp32"] / ips["bare fp32"], abs=0.01)
    secs = dict(re.findall(r"^\| (oodbench train|textbook process) \| ([\d.]+) \|", out, re.M))
    whole = re.search(r"oodbench train is ([\d.]+)x the textbook process", out)
    assert len(secs) == 2 and whole, out
    expected = float(secs["textbook process"]) / float(secs["oodbench train"])
    assert float(whole[1]) == pytest.approx(expected, rel=0.05)


def test_detector_benchmark_synthetic_features_and_no_dependency() -> None:
    train, test = _module("detector_vs_pytorch_ood").synthetic(300, 200)
    assert train.features.shape == (300, 96) and test.features.shape == (200, 96)
    assert (test.labels == -1).sum() == 100  # half the scored rows are OOD
    assert torch.allclose(train.logits, train.features @ train.weight.T + train.bias, atol=1e-5)
    assert "pytorch-ood" not in (ROOT / "pyproject.toml").read_text()  # never a dependency


def test_shifted_build_times_every_corruption() -> None:
    from oodbench.data.corruptions import CORRUPTIONS

    times = _module("shifted_build").build_times("fashion-mnist", limit=4)
    assert list(times) == list(CORRUPTIONS) and all(t > 0 for t in times.values())
