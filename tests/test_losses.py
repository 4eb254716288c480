"""Losses: the paper's LogitNorm bound, scale invariance, validation, registry names."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from oodbench.errors import UserError
from oodbench.train.losses import (
    LOSSES,
    cross_entropy,
    logit_norm_loss,
    logit_norm_lower_bound,
    logit_penalty,
    make_loss,
)


def test_registry_uses_cli_names() -> None:
    assert LOSSES.names() == ["ce", "logitnorm", "logit-penalty"]


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(2, 100),
    tau=st.floats(0.005, 2.0),
    scale=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**16),
)
def test_logitnorm_respects_lower_bound(k: int, tau: float, scale: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(16, k, generator=g, dtype=torch.float64) * scale
    targets = torch.randint(0, k, (16,), generator=g)
    # per-sample losses: the bound holds for each sample, not only on average
    per_sample = [logit_norm_loss(logits[i : i + 1], targets[i : i + 1], tau) for i in range(16)]
    bound = logit_norm_lower_bound(k, tau)
    assert min(float(v) for v in per_sample) >= bound - 1e-6


@pytest.mark.parametrize("scale", [0.05, 0.5, 7.0, 1e4])
def test_logitnorm_is_scale_invariant(scale: float) -> None:
    logits = torch.randn(32, 10, dtype=torch.float64)
    y = torch.randint(0, 10, (32,))
    base = logit_norm_loss(logits, y, 0.04)
    assert float(logit_norm_loss(logits * scale, y, 0.04)) == pytest.approx(float(base), rel=1e-5)
    # cross-entropy is not, which is the whole point of the paper
    assert float(cross_entropy(logits * 10, y)) != pytest.approx(float(cross_entropy(logits, y)))


def test_logitnorm_matches_the_formula() -> None:
    logits, y, tau = torch.randn(8, 5), torch.randint(0, 5, (8,)), 0.1
    norms = logits.norm(dim=1, keepdim=True) + 1e-7
    expected = F.cross_entropy(logits / (tau * norms), y)
    assert torch.allclose(logit_norm_loss(logits, y, tau), expected)


def test_logit_penalty_adds_mean_squared_norm() -> None:
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    extra = logit_penalty(logits, y, 0.5) - F.cross_entropy(logits, y)
    assert float(extra) == pytest.approx(0.5 * float(logits.pow(2).sum(1).mean()), rel=1e-5)
    assert torch.allclose(logit_penalty(logits, y, 0.0), F.cross_entropy(logits, y))


@pytest.mark.parametrize("tau", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_tau_is_refused(tau: float) -> None:
    with pytest.raises(UserError, match="tau"):
        make_loss("logitnorm", tau=tau)


@pytest.mark.parametrize("lam", [-1.0, float("nan")])
def test_bad_lambda_is_refused(lam: float) -> None:
    with pytest.raises(UserError, match="lambda"):
        make_loss("logit-penalty", penalty=lam)


def test_unknown_loss_suggests_a_name() -> None:
    with pytest.raises(UserError, match="logitnorm"):
        make_loss("logitnrom")
