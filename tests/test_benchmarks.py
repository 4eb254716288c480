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
ENV = os.environ | {"PYTHON": sys.executable}
TINY_IMAGES = 512  # benchmarks/gpu_check.py --tiny trains on 512 images


def _module(name: str):  # noqa: ANN202 - a script loaded as a module
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
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


@pytest.mark.slow  # ~30 s on a busy 2-core machine
def test_gpu_check_tiny_on_cpu() -> None:
    out = _run(["bash", "benchmarks/gpu_check.sh", "--tiny", "--device", "cpu"])
    ours = re.search(r"oodbench loop:\s+(\d+) img/s\s+([\d.]+) s/epoch", out)
    book = re.search(r"textbook loop:\s+(\d+) img/s\s+([\d.]+) s/epoch", out)
    ratio = re.search(r"ratio oodbench / textbook: ([\d.]+)x", out)
    rows = re.search(r"warm cache: [\d.]+ s \((\d+) rows\)", out)
    assert ours and book and ratio and rows, out
    img_s, s_epoch = float(ours[1]), float(ours[2])  # printed to 1 img/s and 0.01 s
    assert abs(img_s * s_epoch - TINY_IMAGES) <= 0.005 * img_s + s_epoch, out  # one epoch's images
    assert float(ratio[1]) == pytest.approx(img_s / float(book[1]), rel=0.02)
    assert int(rows[1]) == len(detectors.names())  # --detector all: one row per detector


@pytest.mark.slow  # trains 4 tiny runs and scores one: ~40 s
def test_scaling_tiny() -> None:
    out = _run([sys.executable, "benchmarks/scaling.py", "--tiny"])
    assert re.search(r"^\| 256 \| [\d.]+ \|", out, re.M), out
    assert re.search(r"^\| 1000 \| [\d.]+ \|", out, re.M), out
    assert re.search(r"^\| 4 \| [\d.]+ \| msp, maxlogit, energy, entropy \|$", out, re.M), out


@pytest.mark.slow  # two 512-image epochs (ours, then PIL + DataLoader)
def test_train_throughput_subset() -> None:
    out = _run([sys.executable, "benchmarks/train_throughput.py", "--subset", "512"])
    ours = re.search(r"oodbench loop .*: +(\d+) img/s", out)
    book = re.search(r"textbook loop .*: +(\d+) img/s", out)
    speedup = re.search(r"speedup: ([\d.]+)x", out)
    assert ours and book and speedup and "512 training images" in out, out
    assert float(speedup[1]) == pytest.approx(int(ours[1]) / int(book[1]), rel=0.02)


@pytest.mark.slow  # trains a 512-image run, then extracts 25k images twice
def test_score_throughput_default() -> None:
    out = _run([sys.executable, "benchmarks/score_throughput.py", "--ood", "gaussian"])
    count = re.search(r"^detectors: (\d+) \(", out, re.M)
    cold = re.search(r"one extraction pass \(cold cache, msp only\): ([\d.]+) s", out)
    warm = re.search(r"warm cache:\s+([\d.]+) s", out)
    each = re.search(r"one forward pass per detector \(estimate (\d+) x cold\): ([\d.]+) s", out)
    speedup = re.search(r"speed-up of the cache over one pass per detector: ([\d.]+)x", out)
    assert count and cold and warm and each and speedup, out
    n = len(detectors.names(include_model=False))  # the detectors that can use the cache
    assert int(count[1]) == int(each[1]) == n
    assert float(each[2]) == pytest.approx(n * float(cold[1]), abs=0.05 * n + 0.05)
    assert float(speedup[1]) > 1, out  # the cache beats one forward pass per detector
