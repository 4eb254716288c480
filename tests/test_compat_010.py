"""A run dir written by oodbench 0.1.0 still scores and reports, with the very same numbers.

``tests/fixtures/v010`` was written by the 0.1.0 release before the layout moved
(``oodbench train --loss logitnorm --tau 0.1 --epochs 1 --subset 512 --val-size 500
--batch-size 128 --device cpu --name v010`` then ``oodbench score v010 -d all --ood gaussian
--ood mnist-5k --protocol paper`` and ``--protocol full``). Its ``metrics.csv`` holds the
numbers 0.1.0 computed; rescoring the copy from scratch must reproduce every one to 1e-3
percentage points. Not exactly: rescoring reruns the network, and the same torch build on
another CPU (AMX here) rounds the forward pass's float sums differently, which reorders
near-tied scores. On 2026-12-04 the 0.1.0-era code itself (d86b24f) rescored with AUROCs off by
up to 7e-5 points on this project's machine, FPR95 unchanged; a real regression moves a
number by far more.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from oodbench.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "v010"
KEY = ["detector", "ood_dataset", "protocol", "convention"]
TOLERANCE = 1e-3  # percentage points: float rounding of the network's forward across CPUs
METRICS = ["fpr95", "auroc", "aupr_in", "aupr_out", "fpr95_std", "auroc_std", "n_id", "n_ood"]


# The module fixture rescores a 0.1.0 run with its 14 detectors: about a minute.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rescored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("compat") / "v010"
    shutil.copytree(FIXTURE, run)
    (run / "metrics.csv").unlink()  # nothing may be reused: every row is recomputed
    # the 14 detectors 0.1.0 had (its "all"); the 20 added since have nothing to compare with
    names = pd.read_csv(FIXTURE / "metrics.csv")["detector"].unique()
    for protocol in ("paper", "full"):
        argv = ["score", str(run), "--ood", "gaussian", "--ood", "mnist-5k"]
        argv += [arg for name in names for arg in ("-d", name)]
        assert main([*argv, "--protocol", protocol, "--device", "cpu", "-q"]) == 0
    return run


def test_every_010_detector_number_is_unchanged(rescored: Path) -> None:
    old = pd.read_csv(FIXTURE / "metrics.csv")
    new = pd.read_csv(rescored / "metrics.csv")
    assert len(old) == 56  # 14 detectors x 2 OOD sets x 2 protocols, as 0.1.0 wrote them
    merged = old.merge(new, on=KEY, suffixes=("_old", "_new"), how="left", validate="1:1")
    for col in METRICS:
        a, b = merged[f"{col}_old"], merged[f"{col}_new"]
        same = ((a - b).abs() <= TOLERANCE) | (a.isna() & b.isna())
        assert same.all(), f"{col} changed for {merged.loc[~same, KEY].to_dict('records')}"


def test_010_run_dir_reports_in_every_format(rescored: Path, tmp_path: Path) -> None:
    for fmt in ("markdown", "csv", "json"):
        out = tmp_path / f"report.{fmt}"
        assert (
            main(
                ["report", str(FIXTURE), "--format", fmt, "--out", str(out), "--protocol", "paper"]
            )
            == 0
        )
        text = out.read_text(encoding="utf-8")
        assert "msp" in text and "vim" in text
