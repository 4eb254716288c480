"""Shared test fixtures. Keep them generic; add yours below."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


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
