"""KNN: one top-K pass per (bank, queries) serves every k of the tuning grid, bitwise."""

from __future__ import annotations

import pytest
import torch

from oodbench.detectors import features as F
from oodbench.models.outputs import Outputs


def _outputs(n: int, d: int, seed: int) -> Outputs:
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, d, generator=g).relu()
    return Outputs(torch.randn(n, 10, generator=g), feats, torch.arange(n) % 10)


def _reference(train: Outputs, test: Outputs, k: int) -> torch.Tensor:
    """The textbook definition: full fp32 similarity matrix, k-th largest per row."""
    bank = torch.nn.functional.normalize(train.features, dim=1)
    z = torch.nn.functional.normalize(test.features, dim=1)
    sim = F.as_float((z @ bank.T).topk(k, dim=1).values[:, -1])
    return -(2 - 2 * sim).clamp(min=0).sqrt()


def test_every_grid_k_is_bitwise_the_direct_top_k(monkeypatch: pytest.MonkeyPatch) -> None:
    train, test = _outputs(600, 16, 0), _outputs(300, 16, 1)
    passes = []
    original = F.KNN._top_similarities

    def counting(self: F.KNN, z: torch.Tensor, k: int) -> torch.Tensor:
        passes.append(k)
        return original(self, z, k)

    monkeypatch.setattr(F.KNN, "_top_similarities", counting)
    grid = F.KNN.k.grid
    for k in grid:
        got = F.KNN(k=k).fit(train).score(test)
        assert torch.equal(got, _reference(train, test, k)), k
    # the first k alone, then one widening to the largest k serves the rest of the grid
    assert passes == [grid[0], max(grid)], passes
    other = _outputs(300, 16, 1)  # equal values, another tensor: not a cache hit
    F.KNN(k=50).fit(train).score(other)
    assert passes == [grid[0], max(grid), 50]


def test_a_freed_tensor_never_matches_a_stale_entry() -> None:
    cache = F._SharedTopK(size=2)
    a, b = torch.zeros(3), torch.zeros(3)
    cache.put(a, b, torch.ones(3, 4))
    assert cache.get(a, b, 4) is not None and cache.get(a, b, 5) is None
    del a
    assert all(e[0]() is None for e in cache.entries)
    c = torch.zeros(3)
    assert cache.get(c, b, 1) is None
