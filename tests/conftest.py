"""Shared test fixtures: an isolated dataset cache, and one tiny run trained and scored once.

``trained_run`` and ``scored_run`` are built once per test session and are read only: a test
that writes takes ``run`` (a private copy) or copies them itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import DETECTORS, OOD, SCORE, TRAIN

from oodbench.cli import main


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs ``-n auto``), each worker and every process it
    starts computes with one thread: the workers already use the cores, and a kill/resume
    test's subprocess must sum in the same order as the in-process run it is compared with."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _isolated_dataset_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point OODBENCH_CACHE at a per-session temp dir so tests never touch the user's cache.

    Session-scoped so expensive sets (fonts, textures) are built once per test run.
    """
    path = tmp_path_factory.mktemp("oodbench-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OODBENCH_CACHE", str(path))
        yield path


@pytest.fixture()
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty OODBENCH_CACHE for one test (for tests that count cache hits and misses)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("OODBENCH_CACHE", str(path))
    assert os.environ["OODBENCH_CACHE"] == str(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def _no_shifted_sets_by_default() -> Iterator[None]:
    """``score`` reads no covariate-shifted set unless a test asks for them (tests/
    test_overconfidence.py registers two small fakes): the 60 real ones would add minutes to
    every scored run."""
    from oodbench.scoring import confidence

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(confidence, "shift_names", lambda id_name, size: [])
        patch.setenv("OODBENCH_NO_SHIFT", "1")  # and in the processes tests start
        # 100 bootstrap resamples a row, not 1,000: a tenth of the cost, which was most of a
        # tiny bench's scoring (1 s per OOD row, 2.4 s per failure row); the code is the same
        patch.setenv("OODBENCH_N_BOOT", "100")
        yield


@pytest.fixture(scope="session")
def trained_run(_isolated_dataset_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``runs/tiny``: small_cnn, 1 epoch on the ``_cli.SUBSET`` images, not scored. Read only."""
    runs = tmp_path_factory.mktemp("trained")
    assert main(["train", "--runs-dir", str(runs), "--name", "tiny", "--epochs", "1", *TRAIN]) == 0
    return runs / "tiny"


@pytest.fixture(scope="session")
def scored_run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``trained_run`` scored with ``_cli.DETECTORS`` on ``_cli.OOD`` (full protocol, ID
    positive), alone in its runs dir. Read only."""
    run = Path(shutil.copytree(trained_run, tmp_path_factory.mktemp("scored") / "tiny"))
    dets = [a for d in DETECTORS for a in ("-d", d)]
    oods = [a for o in OOD for a in ("--ood", o)]
    assert main(["score", str(run), *dets, *oods, *SCORE]) == 0
    return run


@pytest.fixture()
def run(scored_run: Path, tmp_path: Path) -> Path:
    """A private copy of ``scored_run`` at ``tmp_path/runs/tiny``, for a test that writes."""
    return Path(shutil.copytree(scored_run, tmp_path / "runs" / "tiny"))
