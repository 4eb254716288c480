"""The OpenOOD bridge: OpenOOD v1.5 ResNet18_32x32 checkpoints imported and scored, and
``report --format openood`` in the layout of OpenOOD's ``scripts/eval_ood.py --save-csv``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_byo import write_pngs
from test_report_fixtures import make_run
from torch.nn import functional as F

from oodbench.cli import main
from oodbench.models.weights import load_run

STAGES = ((1, 64), (2, 128), (3, 256), (4, 512))  # OpenOOD's layer1-layer4: stride, width


def openood_state(classes: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with the keys and shapes of OpenOOD's ``ResNet18_32x32``, written
    from the structure of openood/networks/resnet18_32x32.py (not from our model)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, cout: int, cin: int, k: int) -> None:
        state[f"{name}.weight"] = (
            torch.randn(cout, cin, k, k, generator=g) * (2 / (cin * k * k)) ** 0.5
        )

    def bn(name: str, c: int) -> None:  # random statistics, so eval-mode BN is exercised
        state[f"{name}.weight"] = 1 + 0.1 * torch.randn(c, generator=g)
        state[f"{name}.bias"] = 0.1 * torch.randn(c, generator=g)
        state[f"{name}.running_mean"] = 0.1 * torch.randn(c, generator=g)
        state[f"{name}.running_var"] = 1 + 0.1 * torch.rand(c, generator=g)
        state[f"{name}.num_batches_tracked"] = torch.tensor(100)

    conv("conv1", 64, 3, 3)
    bn("bn1", 64)
    cin = 64
    for i, width in STAGES:
        for j in range(2):
            p = f"layer{i}.{j}"
            conv(f"{p}.conv1", width, cin if j == 0 else width, 3)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2", width, width, 3)
            bn(f"{p}.bn2", width)
            if j == 0 and cin != width:
                conv(f"{p}.shortcut.0", width, cin, 1)
                bn(f"{p}.shortcut.1", width)
        cin = width
    state["fc.weight"] = 0.05 * torch.randn(classes, 512, generator=g)
    state["fc.bias"] = 0.1 * torch.randn(classes, generator=g)
    return state


def reference_features(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """OpenOOD's ``forward(x, return_feature=True)[1]`` computed from the state dict alone."""

    def bn(t: torch.Tensor, name: str) -> torch.Tensor:
        stats = state[f"{name}.running_mean"], state[f"{name}.running_var"]
        affine = state[f"{name}.weight"], state[f"{name}.bias"]
        return F.batch_norm(t, *stats, *affine, training=False, eps=1e-5)

    def conv(t: torch.Tensor, name: str, stride: int) -> torch.Tensor:
        weight = state[f"{name}.weight"]
        return F.conv2d(t, weight, stride=stride, padding=weight.shape[-1] // 2)

    out = F.relu(bn(conv(x, "conv1", 1), "bn1"))
    for i, _ in STAGES:
        for j in range(2):
            p, stride = f"layer{i}.{j}", (1 if i == 1 or j == 1 else 2)
            y = F.relu(bn(conv(out, f"{p}.conv1", stride), f"{p}.bn1"))
            y = bn(conv(y, f"{p}.conv2", 1), f"{p}.bn2")
            short = out
            if f"{p}.shortcut.0.weight" in state:
                short = bn(conv(out, f"{p}.shortcut.0", stride), f"{p}.shortcut.1")
            out = F.relu(y + short)
    return out.mean(dim=(2, 3))  # AdaptiveAvgPool2d(1), flattened


@pytest.fixture(scope="module")
def id_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar-like")
    for c, name in enumerate(("cat", "dog")):
        write_pngs(root / "train" / name, 20, size=(32, 32), seed=c)
        write_pngs(root / "test" / name, 5, size=(32, 32), seed=10 + c)
    return root


def _import(ckpt: Path, folder: Path, runs: Path, name: str) -> Path:
    argv = ["import", str(ckpt), "--model", "resnet18_32x32", "--dataset", f"folder:{folder}"]
    assert main([*argv, "--runs-dir", str(runs), "--name", name]) == 0
    return runs / name


def test_openood_checkpoint_imports_key_for_key(id_folder: Path, tmp_path: Path) -> None:
    state = openood_state()
    ckpt = tmp_path / "best.ckpt"  # OpenOOD saves net.state_dict() with torch.save
    torch.save({f"module.{k}": v for k, v in state.items()}, ckpt)  # as under DataParallel
    model, _, _ = load_run(_import(ckpt, id_folder, tmp_path / "runs", "ce"))
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model(x)
    want = reference_features(state, x)
    torch.testing.assert_close(features, want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logits, F.linear(want, state["fc.weight"], state["fc.bias"]),
                               rtol=1e-4, atol=1e-5)  # fmt: skip


def test_t2fnorm_checkpoint_gives_its_ood_inference_logits(id_folder: Path, tmp_path: Path) -> None:
    state, tau = openood_state(seed=2), 0.1
    ckpt = tmp_path / "best.ckpt"  # T2FNormNet: the ResNet under backbone., and a tau buffer
    torch.save({**{f"backbone.{k}": v for k, v in state.items()}, "tau": torch.tensor(tau)}, ckpt)
    run = _import(ckpt, id_folder, tmp_path / "runs", "t2fnorm")
    model, _, _ = load_run(run)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model(x)
    # T2FNormNet.forward_ood_inference: fc(features / tau)
    want = F.linear(reference_features(state, x) / tau, state["fc.weight"], state["fc.bias"])
    torch.testing.assert_close(logits, want, rtol=1e-4, atol=1e-4)
    imported = json.loads((run / "config.json").read_text())["extra"]["imported"]
    assert imported["openood"]["prefix_removed"] == "backbone."
    assert imported["openood"]["t2fnorm_tau_folded"] == pytest.approx(tau)  # a float32 buffer


def _as_cifar(run: Path) -> Path:
    """A fabricated run re-labelled as CIFAR-10 with mnist-5k renamed CIFAR-100 (near-OOD)."""
    for name in ("config.json", "summary.json"):
        doc = json.loads((run / name).read_text())
        doc["dataset" if name == "config.json" else "id_dataset"] = "cifar10"
        (run / name).write_text(json.dumps(doc))
    table = pd.read_csv(run / "metrics.csv")
    table["id_dataset"] = "cifar10"
    table["ood_dataset"] = table["ood_dataset"].replace({"mnist-5k": "cifar100"})
    table.to_csv(run / "metrics.csv", index=False)
    return run


def test_report_format_openood_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    seeds = [_as_cifar(make_run(runs, f"ce{s}", "ce", seed=s, jitter=2.0 * s)) for s in (0, 1)]
    _as_cifar(make_run(runs, "ln0", "logitnorm"))
    out = tmp_path / "openood"
    argv = ["report", str(runs), "--format", "openood", "--out", str(out), "--protocol", "paper"]
    assert main(argv) == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    settings = ("cifar10_small_cnn_CE", "cifar10_small_cnn_LogitNorm_tau=0.04")
    assert files == [f"{s}/ood/{det}.csv" for s in settings for det in ("energy", "msp")]
    assert str(out / "cifar10_small_cnn_CE" / "ood" / "msp.csv") in capsys.readouterr().err
    text = (out / "cifar10_small_cnn_CE" / "ood" / "msp.csv").read_text()
    lines = text.splitlines()
    # pandas' to_csv of OpenOOD's frame: an unnamed index column, then its nine columns
    assert lines[0] == ",FPR@95,AUROC,AUPR_IN,AUPR_OUT,CCR_4,CCR_3,CCR_2,CCR_1,ACC"
    table = pd.read_csv(out / "cifar10_small_cnn_CE" / "ood" / "msp.csv", index_col=0)
    assert list(table.index) == ["cifar100", "nearood", "notmnist-fonts", "gaussian", "farood"]
    # independently: msp FPR95 = 62 + the set's offset + 2 * seed (test_report_fixtures)
    assert table.loc["cifar100", "FPR@95"] == "69.00 ± 1.00"  # 68 and 70: numpy's std (ddof 0)
    assert table.loc["farood", "FPR@95"] == "57.00 ± 1.00"  # mean of 62 + 0 and 62 - 12, +seed
    assert table.loc["nearood", "AUROC"] == table.loc["cifar100", "AUROC"]
    assert table[["CCR_4", "CCR_3", "CCR_2", "CCR_1"]].isna().all().all()  # not computed
    acc = [json.loads((r / "summary.json").read_text())["id_accuracy"] for r in seeds]
    assert set(table["ACC"]) == {f"{np.mean(acc):.2f} ± {np.std(acc):.2f}"}


def test_report_format_openood_needs_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_run(tmp_path / "runs", "ce0", "ce")
    assert main(["report", str(tmp_path / "runs"), "--format", "openood"]) == 2
    assert "pass --out FOLDER" in capsys.readouterr().err


@pytest.mark.slow
def test_every_detector_scores_an_openood_checkpoint(id_folder: Path, tmp_path: Path) -> None:
    from oodbench.detectors import build

    ckpt = tmp_path / "best.ckpt"
    torch.save(openood_state(seed=4), ckpt)
    run = _import(ckpt, id_folder, tmp_path / "runs", "ce")
    write_pngs(tmp_path / "ood", 16, size=(32, 32), seed=99)  # a small OOD set: ResNet-18 on CPU
    argv = ["score", str(run), "-d", "all", "--ood", f"folder:{tmp_path / 'ood'}", "--k", "5"]
    assert main([*argv, "--device", "cpu", "-q"]) == 0
    table = pd.read_csv(run / "metrics.csv")
    every = {d.label for d in build(["all"], (), {"k": 5})}  # "all" without aliases
    assert set(table["detector"]) == every and len(every) >= 30
    assert table["auroc"].between(0, 100).all()
