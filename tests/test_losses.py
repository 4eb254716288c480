"""Losses: the registry (every loss trains, --loss-param, labels, 0.1.0 configs), the paper's
LogitNorm bound, scale invariance, validation, and the documented "add your own loss"."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from oodbench import losses
from oodbench.cli import main
from oodbench.config import TrainConfig
from oodbench.errors import UserError
from oodbench.losses import (
    LOSSES,
    Param,
    cross_entropy,
    logit_norm_loss,
    logit_norm_lower_bound,
    logit_penalty,
    make_loss,
)
from oodbench.train import checkpoint as ck
from oodbench.train.options import build_config

ONE_STEP = ["--subset", "64", "--batch-size", "64", "--val-size", "64", "--epochs", "1",
            "--device", "cpu", "-q"]  # fmt: skip
DOCS = Path(__file__).parents[1] / "docs" / "training.md"


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_registered_loss_trains_one_step(tmp_path: Path, name: str) -> None:
    """The invariant behind the registry: any loss it lists trains through the CLI."""
    assert main(["train", "--runs-dir", str(tmp_path), "--loss", name, *ONE_STEP]) == 0
    run = next(tmp_path.iterdir())
    config = json.loads((run / "config.json").read_text())
    declared = {p.name: p.default for p in LOSSES.get(name).params}
    assert config["loss"] == name and config["loss_params"] == declared
    assert "tau" not in config and "penalty" not in config  # the 0.1.0 fields are gone
    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == [1] and np.isfinite(history["train_loss"]).all()
    assert run.name == losses.default_name(TrainConfig(loss=name))


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


# ------------------------------------------------------------------ parameters and the CLI


def test_tau_is_sugar_for_loss_param(tmp_path: Path) -> None:
    typed = build_config({"loss": "logitnorm"}, None, False, tmp_path, None, ["tau=0.1"])
    sugar = build_config({"loss": "logitnorm", "tau": 0.1}, None, False, tmp_path, None)
    assert typed == sugar and typed.loss_params == {"tau": 0.1} and typed.tau == 0.1
    assert losses.default_name(typed) == "fashion-mnist-small_cnn-logitnorm-t0.1"
    # a preset's tau applies only to a loss that declares it, as in 0.1.0
    ce = build_config({"loss": "ce"}, "paper-cifar10", False, tmp_path, None)
    assert ce.loss_params == {} and losses.label(ce.loss, ce.loss_params) == "CE"


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--loss", "logitnorm", "--loss-param", "taw=0.1"], ["'taw'", "did you mean 'tau'"]),
        (["--loss", "ce", "--loss-param", "tau=0.1"], ["'ce'", "belongs to --loss logitnorm"]),
        (["--loss", "logitnorm", "--loss-param", "tau=abc"], ["--loss-param tau", "'abc'"]),
        (["--loss", "logitnorm", "--loss-param", "tau=0"], ["--loss-param tau", "(0, inf)"]),
        (["--loss", "logitnorm", "--loss-param", "tau"], ["NAME=VALUE", "'tau'"]),
        (["--loss", "logit-penalty", "--penalty", "-1"], ["--penalty", "-1", "[0, inf)"]),
        (["--loss", "logitnorm", "--tau", "inf"], ["--tau", "inf"]),
        (["--tau", "0"], ["--tau", "(0, inf)"]),  # checked even when the loss has no tau
        (["--loss", "logitnrom"], ["did you mean 'logitnorm'"]),
    ],
)
def test_bad_loss_options_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    assert main(["train", "--runs-dir", str(tmp_path / "runs"), *ONE_STEP, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert all(n in err for n in needles), err
    assert not (tmp_path / "runs").exists()


def test_a_010_config_loads_labels_and_resumes() -> None:
    saved = json.loads((Path(__file__).parent / "fixtures/v010/config.json").read_text())
    cfg = losses.configure(TrainConfig.from_json(saved))
    assert cfg.loss_params == {"tau": 0.1} and cfg.tau == 0.1  # penalty belonged to no loss here
    assert losses.label(cfg.loss, cfg.loss_params) == "LogitNorm τ=0.1"
    ck.check_resume_config(saved, cfg)  # the same experiment: no error
    with pytest.raises(UserError, match="loss_params"):
        ck.check_resume_config(saved, losses.configure(TrainConfig.from_json(saved | {"tau": 1})))


def test_010_make_loss_calls_still_work() -> None:
    from oodbench.losses import make_loss as shim

    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    assert torch.equal(shim("ce", tau=0.04, penalty=0.1)(logits, y), cross_entropy(logits, y))
    assert torch.equal(make_loss("logitnorm", tau=0.5)(logits, y), logit_norm_loss(logits, y, 0.5))
    assert make_loss("logit-penalty").label == "Logit penalty λ=0.1"


def test_param_checks_type_and_range() -> None:
    count = Param(3, name="n", help="a count", type=int, low=1, high=5)
    assert count.check("4", where="n") == 4 and isinstance(count.check(2.0, where="n"), int)
    for bad in (0, 6, 2.5, True, "x", float("nan")):
        with pytest.raises(UserError, match=re.escape("n must be a whole number in [1, 5]")):
            count.check(bad, where="n")


def test_losses_and_detectors_share_one_param_class() -> None:
    from oodbench.detectors.params import Param as DetectorParam
    from oodbench.registry import Param as RegistryParam

    assert Param is DetectorParam is RegistryParam


# ------------------------------------------------------------------ "Add your own loss"


def _documented_loss() -> str:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("### Add your own loss") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def documented_loss(monkeypatch: pytest.MonkeyPatch) -> type[losses.Loss]:
    """The docs' example, registered for this test only."""
    monkeypatch.setattr(LOSSES, "_items", dict(LOSSES._items))
    namespace: dict[str, object] = {}
    exec(compile(_documented_loss(), str(DOCS), "exec"), namespace)
    return LOSSES.get("feature-penalty")


def test_the_documented_loss_trains_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, documented_loss: type[losses.Loss]
) -> None:
    seen: list[bool] = []
    real = documented_loss.forward

    def spy(self, logits, targets, features, head):  # type: ignore[no-untyped-def]
        weight, bias = head
        seen.append(torch.allclose(features @ weight.T + bias, logits.float(), atol=1e-5))
        return real(self, logits, targets, features, head)

    monkeypatch.setattr(documented_loss, "forward", spy)
    runs = tmp_path / "runs"
    argv = ["--loss", "feature-penalty", "--loss-param", "alpha=0.5", "--name", "fp"]
    assert main(["train", "--runs-dir", str(runs), *ONE_STEP, *argv]) == 0
    assert seen == [True]  # one step, and the head is the classifier that made the logits
    config = json.loads((runs / "fp" / "config.json").read_text())
    assert config["loss"] == "feature-penalty" and config["loss_params"] == {"alpha": 0.5}
    assert main(["score", str(runs / "fp"), "-d", "msp", "--ood", "gaussian", "--device", "cpu",
                 "-q"]) == 0  # fmt: skip
    out = tmp_path / "report.md"
    assert main(["report", str(runs / "fp"), "--format", "markdown", "--out", str(out)]) == 0
    assert "Feature penalty α=0.5" in out.read_text(encoding="utf-8")
    bad = ["--loss", "feature-penalty", "--loss-param", "alpha=-1"]
    assert main(["train", "--runs-dir", str(runs), *ONE_STEP, *bad]) == 2
