"""Reliability on real tiny runs: no temp files left, no stale metrics after a retrain, sane
output paths, and concurrent ``oodbench score`` processes that lose no row."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _cli import SCORE, TINY

from oodbench.cli import main
from oodbench.models.weights import load_run
from oodbench.runs import COLUMNS, KEY, drop_stale, merge_metrics, read_metrics


@pytest.fixture()
def runs(scored_run: Path) -> Path:
    """The runs dir of the shared scored run "tiny" (read only: tests copy it to write)."""
    return scored_run.parent


def _copy(runs: Path, dst: Path) -> Path:
    return Path(shutil.copytree(runs / "tiny", dst))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _keys(table: pd.DataFrame) -> list[tuple[str, ...]]:
    return [tuple(map(str, r)) for r in table[KEY].itertuples(index=False)]


# ---------------------------------------------------------------- temp files and file modes


def test_every_command_leaves_no_temp_files(runs: Path, tmp_path: Path) -> None:
    """train, score and report --plots --out on a real run: no *.tmp anywhere afterwards, and
    every result file is as readable as the umask allows (mkstemp's 0600 does not leak)."""
    run = _copy(runs, tmp_path / "runs" / "r")
    argv = ["score", str(run), "-d", "energy", "-d", "knn", "--ood", "gaussian", *SCORE]
    assert main(argv) == 0
    out = tmp_path / "site" / "report.md"
    argv = ["report", str(run), "-f", "markdown", "--out", str(out), "--plots",
            str(tmp_path / "site" / "plots")]  # fmt: skip
    assert main(argv) == 0
    assert out.is_file() and len(list((tmp_path / "site" / "plots").glob("*.png"))) >= 3
    found = list(tmp_path.rglob("*.tmp")) + list(runs.rglob("*.tmp"))
    assert not found, found  # the module fixture's train + score count too
    mask = os.umask(0)
    os.umask(mask)
    want = 0o666 & ~mask
    for path in [*run.rglob("*.safetensors"), run / "metrics.csv", out]:
        assert path.stat().st_mode & 0o777 == want, (path, oct(path.stat().st_mode))


# ---------------------------------------------------------------- stale metrics after retrain


def test_retrained_in_place_rows_are_dropped_and_rescored(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train --resume --epochs 2` rewrites model.safetensors but keeps metrics.csv: rows scored
    with the old weights must not survive as if they described the new ones."""
    run = _copy(runs, tmp_path / "tiny")
    before = pd.read_csv(run / "metrics.csv", dtype={"weights_hash": str})
    assert set(before.weights_hash) == {_sha256(run / "model.safetensors")}
    assert {"msp", "energy"} <= set(before.detector)

    argv = ["train", "--runs-dir", str(tmp_path), "--name", "tiny", "--resume", "--epochs", "2"]
    assert main([*argv, "-q"]) == 0
    new_hash = _sha256(run / "model.safetensors")
    assert new_hash not in set(before.weights_hash)
    capsys.readouterr()
    assert main(["score", str(run), "-d", "msp", "--ood", "gaussian", *SCORE]) == 0
    assert f"dropped {len(before)} stale rows" in capsys.readouterr().err
    after = pd.read_csv(run / "metrics.csv", dtype={"weights_hash": str})
    assert _keys(after) == [("msp", "gaussian", "full", "id-positive")]  # the rest: stale, gone
    assert set(after.weights_hash) == {new_hash}
    old_msp = before.loc[(before.detector == "msp") & (before.ood_dataset == "gaussian"), "auroc"]
    assert after.auroc.item() != old_msp.item()  # recomputed on the new weights, not kept
    # --resume extended the run: one more epoch, and the saved config says so
    assert pd.read_csv(run / "history.csv")["epoch"].tolist() == [1, 2]
    assert load_run(run)[1].epochs == 2


def test_overwrite_retrain_starts_clean(runs: Path, tmp_path: Path) -> None:
    run = _copy(runs, tmp_path / "tiny")
    old_hash = _sha256(run / "model.safetensors")
    argv = ["train", "--runs-dir", str(tmp_path), "--name", "tiny", "--overwrite", "--seed", "1"]
    assert main([*argv, *TINY]) == 0
    assert not (run / "metrics.csv").exists() and not (run / "scores").exists()
    assert main(["score", str(run), "-d", "msp", "--ood", "gaussian", *SCORE]) == 0
    table = pd.read_csv(run / "metrics.csv", dtype={"weights_hash": str})
    assert set(table.weights_hash) == {_sha256(run / "model.safetensors")} != {old_hash}


def test_rows_that_recorded_no_weights_are_not_trusted(tmp_path: Path) -> None:
    """A metrics.csv from before rows carried weights_hash: rescored, not silently kept."""
    row = {c: 1 for c in COLUMNS if c != "weights_hash"}
    row.update(detector="msp", ood_dataset="gaussian", protocol="full", convention="id-positive")
    path = tmp_path / "metrics.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    assert drop_stale(path, "abc") == 1
    assert len(read_metrics(path)) == 0
    merge_metrics(path, [{**row, "weights_hash": "abc"}])
    assert drop_stale(path, "abc") == 0 and len(read_metrics(path)) == 1


# ---------------------------------------------------------------- output paths


def test_report_out_into_a_new_nested_folder(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "report.csv"
    assert main(["report", str(runs / "tiny"), "-f", "csv", "--out", str(out)]) == 0
    assert "msp" in out.read_text() and not list(tmp_path.rglob("*.tmp"))


def test_bench_out_holding_runs_needs_resume_or_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bench" / "ce").mkdir(parents=True)
    (tmp_path / "bench" / "ce" / "config.json").write_text("{}")
    assert main(["bench", "--out", str(tmp_path / "bench"), "--epochs", "1", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--resume" in err and "--overwrite" in err
    assert (tmp_path / "bench" / "ce" / "config.json").read_text() == "{}"


# ---------------------------------------------------------------- concurrency


def _score_at_once(jobs: list[tuple[Path, str]]) -> None:
    """Start one `oodbench score` process per (run, detector), all at once; all must succeed."""
    cmd = [sys.executable, "-m", "oodbench", "score", "--ood", "gaussian", *SCORE]
    procs = [
        subprocess.Popen(
            [*cmd, str(run), "-d", det],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for run, det in jobs
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err


def _check_rows(jobs: list[tuple[Path, str]], before: dict[Path, set[tuple[str, ...]]]) -> None:
    for run in before:
        table = read_metrics(run / "metrics.csv")  # parses, has every column
        got = _keys(table)
        new = {(d, "gaussian", "full", "id-positive") for r, d in jobs if r == run}
        assert len(got) == len(set(got)) and set(got) == before[run] | new
        assert table[["fpr95", "auroc"]].notna().all().all()
        assert not list(run.rglob("*.tmp"))


@pytest.mark.slow  # three processes at once: tens of seconds
def test_score_processes_at_once_on_one_run_and_on_another(runs: Path, tmp_path: Path) -> None:
    """Three real `oodbench score` processes at once: two on the same run with different
    detectors (metrics.csv is merged under a file lock: the earlier rows and both new rows are
    there once), one on a second run, which gets its own row and nothing of the others'."""
    a, b = _copy(runs, tmp_path / "a"), _copy(runs, tmp_path / "b")
    before = {p: set(_keys(pd.read_csv(p / "metrics.csv"))) for p in (a, b)}
    jobs = [(a, "maxlogit"), (a, "entropy"), (b, "gen")]  # rows the shared run lacks
    _score_at_once(jobs)
    _check_rows(jobs, before)
