"""Fabricated run directories for the report tests (the producers' file contract, no training).

``make_run`` writes what ``oodbench train`` + ``oodbench score`` leave in a run dir:
config.json, summary.json, history.csv, metrics.csv, scores/<detector>/<set>.safetensors and
cache/<id_dataset>-test.safetensors. Metric values are fixed numbers (for golden files); scores
and logits are random draws shaped like the paper's picture (LogitNorm separates ID from OOD).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import save_file

from oodbench.metrics import ece, id_accuracy, softmax

ID_SET = "fashion-mnist"
OODS = ("mnist-5k", "notmnist-fonts", "gaussian")
DETECTORS = ("msp", "energy")
# Fixed FPR95 / AUROC / AUPR-In per (loss, detector): golden files depend on these only.
BASE = {
    ("ce", "msp"): (62.0, 88.0, 97.0),
    ("ce", "energy"): (48.0, 90.5, 97.6),
    ("logitnorm", "msp"): (31.0, 94.0, 98.6),
    ("logitnorm", "energy"): (35.5, 93.0, 98.3),
}
OOD_OFFSET = {"mnist-5k": 6.0, "notmnist-fonts": 0.0, "gaussian": -12.0}


def metrics_rows(
    run: str, loss: str, tau: float, seed: int, convention: str, protocol: str, jitter: float
) -> list[dict]:
    rows = []
    for det in DETECTORS:
        fpr, auroc, aupr = BASE[(loss, det)]
        for ood in OODS:
            off = OOD_OFFSET[ood] + jitter
            rows.append(
                {
                    "run": run, "seed": seed, "loss": loss, "tau": tau, "model": "small_cnn",
                    "id_dataset": ID_SET, "detector": det, "ood_dataset": ood,
                    "protocol": protocol, "convention": convention,
                    "fpr95": fpr + off, "auroc": auroc - off / 4, "aupr_in": aupr - off / 10,
                    "aupr_out": aupr - 10 - off / 2, "fpr95_std": 0.5, "auroc_std": 0.25,
                    "aupr_in_std": 0.1, "aupr_out_std": 0.2, "n_id": 1000, "n_ood": 200,
                }
            )  # fmt: skip
    return rows


def _write_scores(path: Path, loss: str, rng: np.random.Generator, n: int = 400) -> None:
    sep = 3.0 if loss == "logitnorm" else 0.8
    for det in DETECTORS:
        folder = path / "scores" / det
        folder.mkdir(parents=True, exist_ok=True)
        id_raw = rng.normal(2.0, 1.0, n)
        save_file({"scores": _squash(det, id_raw)}, str(folder / f"{ID_SET}.safetensors"))
        for k, ood in enumerate(OODS):
            raw = rng.normal(2.0 - sep + 0.3 * k, 1.0, n // 2)
            save_file({"scores": _squash(det, raw)}, str(folder / f"{ood}.safetensors"))


def _squash(det: str, raw: np.ndarray) -> np.ndarray:
    # MSP lives in (0.1, 1] for 10 classes; energy is an unbounded negative-energy score.
    values = 0.1 + 0.9 / (1 + np.exp(-2 * (raw - 1))) if det == "msp" else 5 * raw
    return values.astype(np.float32)


def _logits(loss: str, rng: np.random.Generator, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """About 90% correct; CE logits are large (overconfident), LogitNorm's raw ones small."""
    labels = rng.integers(0, 10, n)
    correct = rng.random(n) < 0.9
    logits = rng.normal(0, 1, (n, 10))
    logits[np.arange(n), np.where(correct, labels, (labels + 1) % 10)] += 3.0
    scale = 3.0 if loss == "ce" else 0.7
    return (logits * scale).astype(np.float32), labels.astype(np.int64)


def _write_cache(path: Path, logits: np.ndarray, labels: np.ndarray) -> None:
    (path / "cache").mkdir(exist_ok=True)
    features = np.zeros((len(labels), 8), dtype=np.float32)
    save_file(
        {"logits": logits, "features": features, "labels": labels},
        str(path / "cache" / f"{ID_SET}-test.safetensors"),
        metadata={"weights_hash": "fixture", "data_hash": "fixture"},
    )


def make_run(
    root: Path,
    name: str,
    loss: str = "ce",
    tau: float = 0.04,
    seed: int = 0,
    convention: str = "id-positive",
    protocol: str = "paper",
    jitter: float = 0.0,
    nested_config: bool = False,
) -> Path:
    """One fabricated, scored run dir at root/name."""
    path = root / name
    path.mkdir(parents=True)
    config = {"dataset": ID_SET, "model": "small_cnn", "loss": loss, "tau": tau, "seed": seed}
    config = {"train": config} if nested_config else config
    (path / "config.json").write_text(json.dumps(config))
    ce = loss == "ce"
    rng = np.random.default_rng(seed + (0 if ce else 100))
    logits, labels = _logits(loss, rng)
    temperature = 2.0 if ce else 0.5
    summary = {
        "id_accuracy": round(id_accuracy(logits, labels) * 100, 2) + jitter,
        "ece": round(ece(softmax(logits), labels) * 100, 2),
        "ece_ts": round(ece(softmax(logits, temperature), labels) * 100, 2),
        "temperature": temperature, "n_test": len(labels),
        "n_val": 500, "loss": loss, "tau": tau, "model": "small_cnn", "id_dataset": ID_SET,
        "seed": seed,
    }  # fmt: skip
    (path / "summary.json").write_text(json.dumps(summary))
    epochs = np.arange(1, 6)
    growth = 4 * np.log1p(epochs) if ce else 0.2 * np.ones(5)
    pd.DataFrame(
        {
            "epoch": epochs, "lr": 0.1, "train_loss": 1 / epochs, "train_acc": 80 + epochs,
            "test_acc": 79 + epochs, "train_logit_norm": 5 + growth,
            "test_logit_norm": 4.5 + growth * 0.9, "images_per_s": 1000.0, "seconds": 3.0,
        }
    ).to_csv(path / "history.csv", index=False)  # fmt: skip
    rows = metrics_rows(name, loss, tau, seed, convention, protocol, jitter)
    pd.DataFrame(rows).to_csv(path / "metrics.csv", index=False)
    _write_scores(path, loss, rng)
    _write_cache(path, logits, labels)
    return path


def make_pair(root: Path, **kwargs: object) -> tuple[Path, Path]:
    """A CE run and a LogitNorm run, as `oodbench bench` leaves them."""
    return make_run(root, "ce", "ce", **kwargs), make_run(root, "logitnorm", "logitnorm", **kwargs)
