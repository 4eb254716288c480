"""KNN: one top-K pass per (bank, queries) serves every k of the tuning grid, bitwise."""

from __future__ import annotations

import pytest
import torch

from oodbench.detectors import features as F
from oodbench.detectors import neighbours as N
from oodbench.errors import UserError
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


def _near_ties(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A bank whose k-th neighbours are closer together than bf16 can tell apart: 300 rows
    within ~1e-4 similarity of a direction q (bf16 resolves ~4e-3 near 1), 20 exact copies of
    one of them, and 1,700 random rows; queries near q and random ones."""
    g = torch.Generator().manual_seed(seed)
    unit = torch.nn.functional.normalize
    q = unit(torch.randn(1, 16, generator=g), dim=1)
    close = unit(q + 0.01 * torch.randn(300, 16, generator=g), dim=1)
    bank = torch.cat([close, close[:1].repeat(20, 1), unit(torch.randn(1700, 16, generator=g))])
    bank = bank[torch.randperm(len(bank), generator=g)]
    near = unit(q + 0.005 * torch.randn(40, 16, generator=g), dim=1)
    return bank, torch.cat([near, unit(torch.randn(200, 16, generator=g), dim=1)])


def test_bf16_candidates_give_the_exact_top_k_on_near_ties() -> None:
    bank, z = _near_ties()
    exact = N.top_exact(z, bank, 50)
    search = N.Bf16Search(bank)
    # the proven bound holds: every bf16 similarity is within half the margin of the fp32 one
    low = (z.bfloat16() @ search.low.T).float()
    assert ((low - z @ bank.T).abs().max(dim=1).values <= search.margin(z, z.bfloat16()) / 2).all()
    got = search.top(z, 50)
    # every value of the top 50, the k-th included, equals fp32's to float rounding
    assert torch.allclose(got, exact, rtol=0, atol=2e-7), (got - exact).abs().max()
    # the dense cluster overflows the candidate width: those queries took the exact row,
    # and the random queries did not (the bf16 pass pruned them)
    assert 0 < search.fallbacks < len(z), search.fallbacks


def test_a_crossed_margin_falls_back_to_the_exact_row() -> None:
    bank, z = _near_ties(1)
    exact = N.top_exact(z, bank, 10)
    narrow = N.Bf16Search(bank, width=12)  # too narrow for most queries' candidates
    assert torch.allclose(narrow.top(z, 10), exact, rtol=0, atol=2e-7)
    assert narrow.fallbacks > len(z) // 2
    # a bank that has no room to prune is searched exactly
    assert torch.equal(N.Bf16Search(bank[:60]).top(z, 50), N.top_exact(z, bank[:60], 50))


def test_the_knn_detector_under_each_search(monkeypatch: pytest.MonkeyPatch) -> None:
    train, test = _outputs(3000, 16, 0), _outputs(200, 16, 1)
    reference = _reference(train, test, 50)
    monkeypatch.setenv("OODBENCH_KNN_SEARCH", "bf16")
    got = F.KNN().fit(train).score(test)
    assert torch.allclose(got, reference, rtol=0, atol=1e-6)
    monkeypatch.setenv("OODBENCH_KNN_SEARCH", "exact")
    F._TOPK.entries.clear()
    assert torch.equal(F.KNN().fit(train).score(test), reference)
    monkeypatch.setenv("OODBENCH_KNN_SEARCH", "fp8")
    F._TOPK.entries.clear()
    with pytest.raises(UserError, match="OODBENCH_KNN_SEARCH"):
        F.KNN().fit(train).score(test)
