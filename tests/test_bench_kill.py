"""``kill -9`` of a running ``oodbench bench`` during training, scoring and tuning; ``bench
--resume`` then finishes with the very numbers of an uninterrupted bench.

The kill is timed by polling the run dir for the file that shows the stage has started (a
history row, a validation-set cache file, a scores file), never by sleeping a fixed time, and
the test checks afterwards that the stage really was unfinished when the process died.
All slow: the uninterrupted bench takes about 70 s and each kill + resume 45-70 s on the
shared 2-core box (``pytest -m slow tests/test_bench_kill.py``: 4 min 20 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _bench import same_numbers
from _cli import SUBSET, VAL_SIZE

from oodbench.cli import main
from oodbench.runs import RunDir

# Two epochs, so a kill after the first history row lands in training; a test OOD set disjoint
# from the validation noise that tuning reads; detectors from the cache (msp, energy).
ARGS = ["-d", "msp", "-d", "energy", "--ood", "mnist-5k", "--epochs", "2", "--subset",
        str(2 * SUBSET), "--val-size", str(VAL_SIZE), "--device", "cpu", "-q"]  # fmt: skip
TIMEOUT = 300  # seconds a stage may take to start on a busy machine


def _bench(out: Path, *extra: str) -> list[str]:
    return ["bench", "--out", str(out), *ARGS, *extra]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "bench"
    assert main(_bench(out)) == 0
    return out


def _kill_when(out: Path, ready: Callable[[], bool]) -> None:
    """Start ``bench`` in a new process, SIGKILL it as soon as ``ready()``, and wait."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "oodbench", *_bench(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + TIMEOUT
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"bench ended before the stage began: {proc.stderr.read()[-2000:]!r}")
            if time.monotonic() > deadline:
                pytest.fail("the stage did not begin in time")
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _resume_and_compare(out: Path, whole: Path) -> None:
    assert main([*_bench(out), "--resume"]) == 0
    same_numbers(out, whole, ["ce", "logitnorm"], rows=2)
    assert (out / "report.md").is_file()


@pytest.mark.slow
def test_killed_during_training(uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    ce = RunDir(out / "ce")
    _kill_when(out, lambda: ce.epochs_done() >= 1)
    assert ce.epochs_done() < 2 and not ce.metrics.exists()  # killed inside training
    _resume_and_compare(out, uninterrupted)


@pytest.mark.slow
def test_killed_during_tuning(uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    ce = RunDir(out / "ce")
    # Tuning extracts a sample of each validation OOD set (cache key <set>-tune: held-out real
    # images by default, noise without them) before the ID test set is loaded.
    _kill_when(out, lambda: any(ce.cache.glob("*-tune.safetensors")))
    assert not ce.cache_file("fashion-mnist-test").exists() and not ce.metrics.exists()
    _resume_and_compare(out, uninterrupted)


@pytest.mark.slow
def test_killed_during_scoring(uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    ce = RunDir(out / "ce")
    # The ID test scores are saved before the OOD set is extracted and any row is written.
    _kill_when(out, lambda: ce.scores_file("msp", "fashion-mnist").exists())
    rows = len(ce.read_metrics()) if ce.metrics.exists() else 0
    assert rows < 2 and not (out / "logitnorm").exists()  # killed inside scoring
    _resume_and_compare(out, uninterrupted)
