"""bench through submitit's local executor (``--launcher local --jobs 2``): a 2-loss x 2-seed
tiny bench gets the very numbers of the serial bench, and a pool killed halfway (the whole
process group, SIGKILL) finishes, on the same command, only the jobs that were not done. The
serial bench (CE and T2FNorm, so its report has the loss x detector matrix) also carries the
matrix's end-to-end test: every report format and the heatmap.
Slow: each tiny bench trains 4 runs and scores them (``pytest -m slow tests/test_bench_pool.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from _bench import same_numbers
from _cli import BENCH

from oodbench.cli import main
from oodbench.runs import RunDir

LOSSES = ("ce", "t2fnorm")  # a loss beyond the CE / LogitNorm pair: the report has the matrix
STUDY = ["--losses", ",".join(LOSSES), "--seeds", "0,1", "-d", "msp", "-d", "maxlogit", "--ood",
         "mnist-5k", "--val-ood", "gaussian", *BENCH]  # fmt: skip
RUNS = [f"seed{s}/{loss}" for s in (0, 1) for loss in LOSSES]
POOL = ["--launcher", "local", "--jobs", "2"]
TIMEOUT = 600  # seconds for the first score job to finish on a busy machine


def _bench(out: Path, *extra: str) -> list[str]:
    return ["bench", "--out", str(out), *STUDY, *extra]


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serial") / "bench"
    # A pool of 2 on this 2-core box gives each job 1 thread, and CPU kernels sum in a
    # thread-count-dependent order: the serial reference trains with 1 thread too.
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        assert main(_bench(out)) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def _same_numbers(out: Path, serial: Path) -> None:
    same_numbers(out, serial, RUNS, rows=2)  # msp and maxlogit
    assert (out / "report.md").is_file() and "Not finished" not in (out / "report.md").read_text()


def _markers(out: Path) -> dict[str, int]:
    """Done-marker file -> its mtime (the ledger plan.json is not a marker)."""
    return {p.name: p.stat().st_mtime_ns for p in (out / ".jobs").glob("*-*.json")}


@pytest.mark.slow
def test_killed_pool_finishes_only_what_is_missing(serial: Path, tmp_path: Path) -> None:
    """A pool of two, killed once its first score job is done, then the same command again:
    only the missing jobs run, and every run (done before or after the kill, all in the pool)
    has the serial bench's numbers. One pool bench, not two: CI's 20 minutes."""
    out = tmp_path / "pool"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "oodbench", *_bench(out, *POOL)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + TIMEOUT
    try:  # halfway: the first score job is done, the other runs are not
        while not any(name.startswith("score-") for name in _markers(out)):
            assert proc.poll() is None, "the bench ended before a score job finished"
            assert time.monotonic() < deadline, "no score job finished in time"
            time.sleep(0.05)
    finally:  # the bench, submitit's controllers and the jobs: one process group
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = _markers(out)
    assert 2 <= len(before) < 9
    trained = [r for r in RUNS if RunDir(out / r).weights.is_file()]
    stamps = {r: RunDir(out / r).weights.stat().st_mtime_ns for r in trained}

    assert main(_bench(out, *POOL)) == 0  # the same command again: no --resume needed
    after = _markers(out)
    assert len(after) == 9
    assert all(after[name] == t for name, t in before.items())  # done jobs were not rerun
    finished = {json.loads((out / ".jobs" / n).read_text())["where"] for n in before
                if n.startswith("train-")}  # fmt: skip
    assert all(RunDir(out / r).weights.stat().st_mtime_ns == stamps[r] for r in finished)
    _same_numbers(out, serial)


@pytest.mark.slow
def test_serial_bench_reports_the_loss_matrix(
    serial: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The loss x detector matrix end to end (issue 13): in report.md with its heatmap, and in
    the json, csv and rich formats; CE is the baseline, not compared with itself."""
    assert sorted(p.name for p in (serial / "seed0").iterdir()) == sorted(LOSSES)
    config = json.loads((serial / "seed1" / "t2fnorm" / "config.json").read_text())
    assert config["loss"] == "t2fnorm" and config["loss_params"] == {"tau": 0.1}
    assert config["seed"] == 1 and config["epochs"] == 1
    report = (serial / "report.md").read_text()
    assert "Loss × detector matrix" in report and "ΔFPR95 vs CE" in report
    assert (
        "Best detector for each loss" in report and "ID accuracy and calibration per loss" in report
    )
    heatmap = serial / "plots" / "loss_detector_heatmap.png"
    assert heatmap.stat().st_size > 5000 and "loss_detector_heatmap.png" in report

    doc_path, csv_path = tmp_path / "r.json", tmp_path / "r.csv"
    assert main(["report", str(serial), "--format", "json", "--out", str(doc_path)]) == 0
    matrix = json.loads(doc_path.read_text())["matrix"]
    pairs = {(loss, det) for loss in LOSSES for det in ("msp", "maxlogit")}
    assert {(r["loss"], r["detector"]) for r in matrix} == pairs
    assert all(r["n_seeds"] == 2 for r in matrix)
    assert main(["report", str(serial), "--format", "csv", "--out", str(csv_path)]) == 0
    table = pd.read_csv(tmp_path / "r.matrix.csv")
    assert len(table) == len(matrix) and {"fpr95_delta", "fpr95_significant"} <= set(table.columns)
    delta = table.set_index(["loss", "detector"])["fpr95_delta"]
    assert delta["ce"].isna().all() and delta["t2fnorm"].notna().all()
    assert main(["report", str(serial), "--format", "rich"]) == 0
    assert "Loss × detector matrix" in capsys.readouterr().out
