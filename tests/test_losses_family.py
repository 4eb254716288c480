"""T2FNorm, ELogitNorm, label smoothing and RegMixup (issue 13): each against an independent,
hand-written computation of its formula on a tiny example; each trains a timm backbone, resumes
bitwise, and runs under two-process DDP (slow: the four in one torchrun launch)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
from _cli import TRAIN
from torch.nn import functional as F

from oodbench.cli import main
from oodbench.losses import make_loss
from oodbench.losses.family import Mixed, elogitnorm_scale
from oodbench.train import loop as train_mod

NEW = ("t2fnorm", "elogitnorm", "label-smoothing", "regmixup")


def ce_by_hand(rows: list[list[float]], targets: list[int]) -> float:
    """Mean cross-entropy with plain Python floats: log-sum-exp minus the target's logit."""
    total = 0.0
    for row, t in zip(rows, targets, strict=True):
        top = max(row)
        total += top + math.log(sum(math.exp(v - top) for v in row)) - row[t]
    return total / len(rows)


# Two samples, three classes, two feature dimensions: small enough to follow on paper.
H = [[3.0, 4.0], [-1.0, 2.0]]
W = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
B = [0.5, -0.5, 0.0]
Y = [2, 0]


def fc(h: list[float]) -> list[float]:
    dots = [sum(w * x for w, x in zip(row, h, strict=True)) for row in W]
    return [d + b for d, b in zip(dots, B, strict=True)]


def tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    h, w, b = torch.tensor(H), torch.tensor(W), torch.tensor(B)
    return h, h @ w.T + b, w, b, torch.tensor(Y)


def test_t2fnorm_is_ce_on_the_normalised_feature_over_tau() -> None:
    tau = 0.1
    rows = []
    for h in H:
        norm = math.sqrt(sum(x * x for x in h))
        rows.append(fc([x / norm / tau for x in h]))
    h, z, w, b, y = tensors()
    got = make_loss("t2fnorm", tau=tau)(z, y, features=h, head=(w, b))
    assert float(got) == pytest.approx(ce_by_hand(rows, Y), rel=1e-6)
    # the raw logits play no part: the loss is invariant to the feature's norm
    again = make_loss("t2fnorm", tau=tau)(z * 7, y, features=h * 7, head=(w, b))
    assert float(again) == pytest.approx(float(got), rel=1e-6)


def elogitnorm_by_hand(h_rows: list[list[float]], targets: list[int]) -> float:
    """The authors' D(z): mean over all C classes (the predicted one's zero term included)."""
    scaled = []
    for h in h_rows:
        z = fc(h)
        c = max(range(len(z)), key=z.__getitem__)
        dists = []
        for j in range(len(z)):
            if j == c:
                dists.append(0.0)
                continue
            wn = math.sqrt(sum((a - b) ** 2 for a, b in zip(W[c], W[j], strict=True)))
            dists.append(abs(z[j] - z[c]) / wn)
        scale = sum(dists) / len(z)  # 1/C as in the code, not the paper's 1/(C-1)
        scaled.append([v / scale for v in z])
    return ce_by_hand(scaled, targets)


def test_elogitnorm_matches_a_direct_computation() -> None:
    h, z, w, b, y = tensors()
    got = make_loss("elogitnorm")(z, y, features=h, head=(w, b))
    assert float(got) == pytest.approx(elogitnorm_by_hand(H, Y), rel=1e-6)


def test_elogitnorm_equals_the_authors_code_and_its_gradients() -> None:
    """limchaos/ELogitNormOOD elogitnorm_loss.py @ a1f83ace, verbatim: values and gradients
    (through the scale into the features and the classifier weight) are bitwise the same."""

    def authors(logits, fc_weight, target):  # type: ignore[no-untyped-def]
        w_diff = fc_weight.unsqueeze(1) - fc_weight.unsqueeze(0)
        denom = torch.norm(w_diff, dim=2)
        denom = denom + torch.eye(denom.size(0), device=denom.device, dtype=denom.dtype)
        values, nn_idx = logits.max(dim=1)
        gaps = (logits - values.unsqueeze(1)).abs()
        scale = (gaps / denom[nn_idx]).mean(dim=1, keepdim=True)
        return F.cross_entropy(logits / scale, target)

    g = torch.Generator().manual_seed(0)
    h0, w0, b0 = torch.randn(16, 8, generator=g), torch.randn(10, 8, generator=g), torch.randn(10)
    y = torch.randint(0, 10, (16,), generator=g)
    grads = []
    for fn in (authors, None):
        h, w, b = (t.clone().requires_grad_() for t in (h0, w0, b0))
        z = h @ w.T + b
        loss = authors(z, w, y) if fn else make_loss("elogitnorm")(z, y, features=h, head=(w, b))
        loss.backward()
        grads.append((loss.detach(), h.grad, w.grad, b.grad))
    assert all(torch.equal(a, o) for a, o in zip(*grads, strict=True))
    assert float(grads[0][2].abs().sum()) > 0


def test_elogitnorm_guards_degenerate_cases() -> None:
    y = torch.tensor([0, 1])
    w = torch.randn(3, 4, requires_grad=True)
    equal = torch.full((2, 3), 2.5, requires_grad=True)  # all logits equal: D(z) = 0
    loss = make_loss("elogitnorm")(equal, y, features=torch.zeros(2, 4), head=(w, None))
    assert float(loss.detach()) == pytest.approx(math.log(3))  # CE of equal logits
    loss.backward()
    assert torch.isfinite(equal.grad).all() and torch.isfinite(w.grad).all()
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)  # rows 0 = 1
    z = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.5, 3.0]], requires_grad=True)
    scale = elogitnorm_scale(z, same)
    # sample 0 predicts class 0: its twin class 1 adds 0, class 2 adds 2 / sqrt(2); mean over 3
    assert float(scale[0]) == pytest.approx((2 / math.sqrt(2)) / 3)
    scale.sum().backward()
    assert torch.isfinite(same.grad).all() and torch.isfinite(z.grad).all()


def test_label_smoothing_matches_the_formula() -> None:
    eps = 0.1
    _, z, _, _, y = tensors()
    expected = 0.0
    for row, t in zip(z.tolist(), Y, strict=True):
        top = max(row)
        lse = top + math.log(sum(math.exp(v - top) for v in row))
        nll = [lse - v for v in row]
        expected += (1 - eps) * nll[t] + eps * sum(nll) / len(row)
    got = make_loss("label-smoothing", epsilon=eps)(z, y)
    assert float(got) == pytest.approx(expected / len(Y), rel=1e-6)
    assert float(make_loss("label-smoothing", epsilon=0.0)(z, y)) == pytest.approx(
        ce_by_hand(z.tolist(), Y), rel=1e-6
    )


def test_regmixup_mixes_a_clean_and_a_mixed_batch_and_matches_the_formula() -> None:
    loss = make_loss("regmixup")
    x = torch.arange(24, dtype=torch.float32).reshape(4, 1, 2, 3)
    y = torch.tensor([0, 1, 2, 1])
    mixed, targets = loss.mix_inputs(x, y, seed=7)
    again, _ = loss.mix_inputs(x, y, seed=7)
    assert torch.equal(mixed, again)  # a pure function of the seed: resume stays bitwise
    assert not torch.equal(mixed, loss.mix_inputs(x, y, seed=8)[0])
    assert isinstance(targets, Mixed) and mixed.shape == (8, 1, 2, 3)
    assert torch.equal(mixed[:4], x) and torch.equal(targets.y_a, torch.cat([y, y]))
    lam = targets.lam
    assert 0 < lam < 1
    perm = [int(t) for t in targets.y_b[4:]]
    for i in range(4):  # each mixed image is lam * x_i + (1 - lam) * x_j with y_b = y_j
        j = next(j for j in range(4) if torch.allclose(mixed[4 + i], lam * x[i] + (1 - lam) * x[j])
                 and int(y[j]) == perm[i])  # fmt: skip
        assert 0 <= j < 4
    logits = torch.randn(8, 3)
    rows, ya, yb = logits.tolist(), targets.y_a.tolist(), targets.y_b.tolist()
    clean = ce_by_hand(rows[:4], ya[:4])
    mix = lam * ce_by_hand(rows[4:], ya[4:]) + (1 - lam) * ce_by_hand(rows[4:], yb[4:])
    assert float(loss(logits, targets)) == pytest.approx((clean + mix) / 2, rel=1e-5)


@pytest.mark.parametrize("name", NEW)
def test_new_loss_trains_a_timm_backbone_one_step(tmp_path: Path, name: str) -> None:
    argv = ["train", "--runs-dir", str(tmp_path), "--name", "t", "--loss", name, "--model",
            "resnet10t", "--subset", "64", "--batch-size", "32", "--val-size", "64", "--epochs",
            "1", "--device", "cpu", "-q"]  # fmt: skip
    assert main(argv) == 0
    history = (tmp_path / "t" / "history.csv").read_text().splitlines()
    assert len(history) == 2 and "nan" not in history[1]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(run_dir / "model.safetensors"))


@pytest.mark.parametrize("name", NEW)
def test_new_loss_resumes_bitwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    args = ["--loss", name, "--epochs", "2", *TRAIN]
    assert main(["train", "--runs-dir", str(tmp_path), "--name", "ref", *args]) == 0
    real, count = train_mod.Loop.step, {"n": 0}

    def step(self: train_mod.Loop, *a: object) -> None:
        real(self, *a)
        count["n"] += 1
        if count["n"] == 5:  # mid epoch 2 (4 steps an epoch)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(train_mod.Loop, "step", step)
    assert main(["train", "--runs-dir", str(tmp_path), "--name", "cut", *args]) == 130
    monkeypatch.undo()
    assert main(["train", "--resume", "--runs-dir", str(tmp_path), "--name", "cut", "-q"]) == 0
    ref, cut = _weights(tmp_path / "ref"), _weights(tmp_path / "cut")
    assert ref.keys() == cut.keys() and all(torch.equal(ref[k], cut[k]) for k in ref)


@pytest.mark.slow  # one torchrun launch (two processes) trains the four losses in turn
def test_new_losses_run_under_two_process_ddp(tmp_path: Path) -> None:
    cmds: list[str] = []
    for name in NEW:
        cmds += ["train", "--runs-dir", str(tmp_path), "--name", name, "--loss", name, "--subset",
                 "128", "--batch-size", "64", "--val-size", "64", "--epochs", "1", "--device",
                 "cpu", "-q", "--"]  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(Path(__file__).parent / "_ddp_many.py"), *cmds]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NEW)
    for name in NEW:
        history = (tmp_path / name / "history.csv").read_text().splitlines()
        assert len(history) == 2 and "nan" not in history[1], name
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["world_size"] == 2 and config["loss"] == name, name
