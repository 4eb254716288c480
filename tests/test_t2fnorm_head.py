"""T2FNorm is scored as its paper and OpenOOD score it (issue 23): at test time the network is
``fc(h / tau)`` (Jingkang50/OpenOOD ``openood/networks/t2fnorm_net.py``,
``forward_ood_inference``), so the cached logits are ``(W / tau) h + b``, the cached head is
``(W / tau, b)`` and the features stay the raw ``h``; ``--head raw`` keeps the trained head and
every row records which head it read. Outputs of one head are never reused for the other."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from _cli import SCORE
from safetensors.torch import load_file

from oodbench.cli import main
from oodbench.data import load as load_data
from oodbench.losses import make_loss
from oodbench.models.weights import load_run
from oodbench.scoring.extract import cached_outputs, extract, read_outputs
from oodbench.scoring.inputs import load_network

TAU = 0.1


def as_loss(trained: Path, dest: Path, loss: str, params: dict[str, float]) -> Path:
    """A copy of the shared run whose config says it was trained with ``loss``: the weights are
    the same, so only the head the scoring derives from the loss can differ."""
    run = Path(shutil.copytree(trained, dest))
    config = json.loads((run / "config.json").read_text())
    config.update(loss=loss, loss_params=params)
    config.pop("tau", None)
    (run / "config.json").write_text(json.dumps(config))
    return run


def few_images():
    data = load_data("fashion-mnist", "test")
    return data.subset(slice(0, 48))


def test_inference_head_is_openood_forward_ood_inference() -> None:
    """The loss's head, against OpenOOD's formula written out: fc(h / tau) with the bias."""
    g = torch.Generator().manual_seed(0)
    h, w, b = torch.randn(7, 5, generator=g), torch.randn(3, 5, generator=g), torch.randn(3)
    fc = torch.nn.Linear(5, 3)
    with torch.no_grad():
        fc.weight.copy_(w), fc.bias.copy_(b)
    reference = fc(h / TAU)  # OpenOOD: feature = feature / self.tau; self.backbone.fc(feature)
    w2, b2 = make_loss("t2fnorm", tau=TAU).inference_head(w, b)
    torch.testing.assert_close(h @ w2.T + b2, reference, rtol=1e-6, atol=1e-5)
    assert make_loss("ce").inference_head(w, b) is None  # every other loss: the trained head
    assert make_loss("logitnorm").inference_head(w, b) is None


def test_t2fnorm_run_extracts_fc_of_h_over_tau(trained_run: Path, tmp_path: Path) -> None:
    run = as_loss(trained_run, tmp_path / "t2", "t2fnorm", {"tau": TAU})
    raw_model, _, info = load_run(run)
    net = load_network(run, "cpu")
    raw = load_network(run, "cpu", head="raw")
    assert (net.head, raw.head) == ("inference", "raw")
    assert raw.model_hash == info["weights_sha256"] != net.model_hash
    data, mean, std = few_images(), tuple(info["mean"]), tuple(info["std"])
    out = extract(net.model, data, mean, std)
    base = extract(raw_model, data, mean, std)
    w, b = raw_model.get_classifier().weight.detach(), raw_model.get_classifier().bias.detach()
    torch.testing.assert_close(out.features, base.features)  # the raw penultimate h
    torch.testing.assert_close(out.weight, w / TAU)  # what ReAct, ViM, ... read
    torch.testing.assert_close(out.bias, b)
    reference = torch.nn.functional.linear(base.features / TAU, w, b)  # fc(h / tau)
    torch.testing.assert_close(out.logits, reference, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out.logits, out.features @ out.weight.T + out.bias,
                               rtol=1e-5, atol=1e-4)  # fmt: skip
    torch.testing.assert_close(extract(raw.model, data, mean, std).logits, base.logits)
    # A cache written for one head is not read back for the other.
    cache = tmp_path / "cache"
    cache.mkdir()
    _, hit = cached_outputs(cache, "x", raw.model, data, mean, std, raw.model_hash)
    got, hit = cached_outputs(cache, "x", net.model, data, mean, std, net.model_hash)
    assert not hit
    torch.testing.assert_close(got.logits, out.logits)


def test_other_losses_keep_the_trained_head(trained_run: Path) -> None:
    net = load_network(trained_run, "cpu")  # the shared run is CE
    _, _, info = load_run(trained_run)
    assert net.head == "raw" and net.model_hash == info["weights_sha256"]


@pytest.mark.slow
def test_score_records_the_head_and_drops_rows_of_the_other(
    trained_run: Path, tmp_path: Path
) -> None:
    """End to end: MSP on the inference head is max softmax(fc(h / tau)); --head raw rescores
    (the other head's rows are stale) and says "raw" in its rows."""
    run = as_loss(trained_run, tmp_path / "t2", "t2fnorm", {"tau": TAU})
    args = ["score", str(run), "-d", "msp", "--ood", "gaussian", *SCORE]
    assert main(args) == 0
    rows = pd.read_csv(run / "metrics.csv")
    assert list(rows["head"]) == ["inference"]
    cached = read_outputs(run / "cache" / "fashion-mnist-test.safetensors")
    w, b = load_run(run)[0].get_classifier().weight.detach(), cached.bias
    reference = torch.nn.functional.linear(cached.features / TAU, w, b)  # fc(h / tau)
    torch.testing.assert_close(cached.logits, reference, rtol=1e-5, atol=1e-4)
    msp = load_file(str(run / "scores" / "msp" / "fashion-mnist.safetensors"))
    scores = next(iter(msp.values())).double()
    torch.testing.assert_close(scores, reference.double().softmax(1).max(1).values,
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    assert summary["head"] == "inference"
    assert main([*args, "--head", "raw"]) == 0
    rows = pd.read_csv(run / "metrics.csv")
    assert list(rows["head"]) == ["raw"] and rows["weights_hash"].nunique() == 1
