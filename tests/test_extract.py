"""Extraction: one pass gives the model's own logits, the cache is hit, and never served stale."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from _scoring_toys import MEAN, STD, ToyNet, toy_images

from oodbench.data import adapt
from oodbench.errors import UserError
from oodbench.scoring.extract import (
    cached_outputs,
    extract,
    normalize,
    read_metadata,
    read_outputs,
    weights_hash,
)


def test_outputs_are_the_models_logits_and_prelogit_features() -> None:
    model, data = ToyNet().eval(), toy_images(70, 0)
    out = extract(model, data, MEAN, STD, batch_size=16)
    x = normalize(data.images, MEAN, STD)
    with torch.no_grad():
        torch.testing.assert_close(out.logits, model(x))
        torch.testing.assert_close(
            out.features, model.forward_head(model.forward_features(x), True)
        )
    torch.testing.assert_close(out.features @ out.weight.T + out.bias, out.logits)
    assert torch.equal(out.labels, data.labels)


def test_ood_batches_are_adapted_like_the_whole_set() -> None:
    """Adapting batch by batch (bounded memory) equals adapting the whole set first."""
    model, like = ToyNet().eval(), toy_images(4, 0)
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (37, 3, 16, 16), generator=g, dtype=torch.uint8)
    rgb = replace(like, images=pixels, labels=torch.full((37,), -1), name="rgb",
                  mean=(0.5,) * 3, std=(0.5,) * 3)  # fmt: skip
    streamed = extract(model, rgb, MEAN, STD, batch_size=8, like=like)
    whole = extract(model, adapt(rgb, like), MEAN, STD, batch_size=64)
    torch.testing.assert_close(streamed.logits, whole.logits)


def test_cache_hit_then_recomputed_on_new_weights_or_data(tmp_path: Path) -> None:
    model, data = ToyNet().eval(), toy_images(40, 0)
    args = (tmp_path, "toy-test")
    first, hit1 = cached_outputs(*args, model, data, MEAN, STD, weights_hash(model))
    second, hit2 = cached_outputs(*args, model, data, MEAN, STD, weights_hash(model))
    assert (hit1, hit2) == (False, True)
    torch.testing.assert_close(first.logits, second.logits)
    assert second.weight is not None and second.bias is not None
    meta = read_metadata(tmp_path / "toy-test.safetensors")
    assert meta["weights_hash"] == weights_hash(model)

    with torch.no_grad():
        model.fc.bias.add_(1.0)  # "retrained": same architecture, new weights
    third, hit3 = cached_outputs(*args, model, data, MEAN, STD, weights_hash(model))
    assert not hit3
    torch.testing.assert_close(third.logits, first.logits + 1.0)

    changed = replace(data, images=data.images.flip(0))
    _, hit4 = cached_outputs(*args, model, changed, MEAN, STD, weights_hash(model))
    assert not hit4


def test_corrupt_cache_is_detected_and_recomputed(tmp_path: Path) -> None:
    model, data = ToyNet().eval(), toy_images(40, 0)
    out, _ = cached_outputs(tmp_path, "k", model, data, MEAN, STD, weights_hash(model))
    path = tmp_path / "k.safetensors"
    path.write_bytes(path.read_bytes()[:-50])  # truncated
    with pytest.raises(UserError, match="corrupt or truncated"):
        read_outputs(path)
    again, hit = cached_outputs(tmp_path, "k", model, data, MEAN, STD, weights_hash(model))
    assert not hit
    torch.testing.assert_close(again.logits, out.logits)
    assert read_outputs(path).logits.shape == out.logits.shape
    path.write_bytes(b"not a safetensors file at all")
    _, hit = cached_outputs(tmp_path, "k", model, data, MEAN, STD, weights_hash(model))
    assert not hit


def test_zero_samples_is_a_user_error() -> None:
    data = toy_images(3, 0).subset(slice(0, 0))
    with pytest.raises(UserError, match="zero samples"):
        extract(ToyNet().eval(), data, MEAN, STD)
