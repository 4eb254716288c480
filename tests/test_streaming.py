"""Row-chunked fits and scores for matrices too large to copy equal the in-memory ones."""

from __future__ import annotations

import pytest
import torch

from oodbench import detectors
from oodbench.detectors import streaming
from oodbench.errors import UserError
from oodbench.models.outputs import Outputs


def _outputs(n: int, seed: int, d: int = 24, c: int = 6) -> Outputs:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(c, d, generator=g) * 3 + 5  # far from 0: a naive one-pass cancels
    y = torch.arange(n) % c
    h = (torch.randn(n, d, generator=g) + centres[y]).relu().half()  # stored as fp16
    w, b = torch.randn(c, d, generator=g) / d, torch.randn(c, generator=g)
    return Outputs((h.double() @ w.T.double() + b).half(), h, y, w, b)


@pytest.mark.parametrize("name", ["mahalanobis", "rmd", "vim", "knn", "gmm"])
def test_streamed_fit_and_score_equal_in_memory(name: str, monkeypatch) -> None:
    train, test = _outputs(3000, 0), _outputs(700, 1)
    params = {"gmm": {"components": 3, "dim": 8}, "knn": {"k": 20}}.get(name, {})
    whole = detectors.create(name, **params).fit(train).score(test)
    monkeypatch.setattr(streaming, "STREAM_ELEMENTS", 1000)  # everything is "large" now
    monkeypatch.setattr(streaming, "_CHUNK_ELEMENTS", 24 * 128)  # 128-row chunks
    streamed = detectors.create(name, **params).fit(train).score(test)
    if name == "gmm":  # axes' signs may differ from PCA's: the fitted density is the same
        assert torch.corrcoef(torch.stack([whole, streamed]))[0, 1] > 0.999
    else:
        assert torch.allclose(whole.double(), streamed.double(), rtol=1e-6, atol=1e-6), name


def test_class_moments_match_the_two_pass_formula() -> None:
    h = _outputs(2000, 2).features
    labels = torch.arange(2000) % 6
    classes, means, cov = streaming.class_moments(h, labels)
    x = h.double()
    two_pass = torch.stack([x[labels == c].mean(0) for c in classes])
    centred = x - two_pass[labels]
    assert torch.allclose(means, two_pass, atol=1e-12)
    assert torch.allclose(cov, centred.T @ centred / len(x), atol=1e-10)


def test_memory_that_cannot_be_had_is_a_one_line_error(monkeypatch) -> None:
    monkeypatch.setattr(streaming, "available_bytes", lambda: 2**20)
    with pytest.raises(UserError, match=r"needs .* GiB but only 0.0 GiB") as err:
        streaming.class_moments(torch.zeros(10, 512), torch.zeros(10, dtype=torch.int64))
    assert "\n" not in str(err.value)


def test_available_memory_is_read_on_linux() -> None:
    assert streaming.available_bytes() > 2**20
