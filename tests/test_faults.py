"""Faults of the machine, not of the input (issue 18): a full disk, a quota, a read-only or
unwritable place, a cache deleted while a job runs.

Every write path gets a fault test in the default suite: the fault is injected at the write call
(``os.replace`` of the finished temporary file onto its target raises the OSError; the
temporary file is complete at that moment, so "it is removed" means something). Real faults
come from a small tmpfs that the test mounts, which needs root (as in CI); elsewhere those tests
skip with the reason. The contract for every refused write: exit 3, one ``error: cannot write
<path>: <cause>; <what to do>`` line, no traceback, no ``*.tmp`` left, result files unchanged.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import safetensors.torch
import torch
from _cli import BENCH, SCORE, TRAIN

from oodbench.cli import main
from oodbench.data import cache as data_cache
from oodbench.data.imageset import ImageSet
from oodbench.errors import FAULT_EXIT
from oodbench.runs import VALUES
from oodbench.scoring import run as scoring_run
from oodbench.train.checkpoint import load_state

# ---------------------------------------------------------------- helpers


def snapshot(root: Path) -> dict[str, str]:
    """Hash of every result file under ``root`` (empty lock files and complete cache entries
    are not results: a failed command may leave them)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix != ".lock" and "cache" not in p.relative_to(root).parts
    }


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob("*.tmp"))


def fail_writes(monkeypatch: pytest.MonkeyPatch, code: int, pattern: str) -> list[str]:
    """Make every atomic write onto a path matching ``pattern`` (fnmatch) fail with ``code``
    at the rename of its finished temporary file; returns the refused targets."""
    real = os.replace
    refused: list[str] = []

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if fnmatch.fnmatch(os.fspath(dst), pattern):
            refused.append(os.fspath(dst))
            raise OSError(code, os.strerror(code), os.fspath(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return refused


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def check_fault(code: int, err: str, *needles: str, root: Path | None = None) -> str:
    """The contract for a write the machine refused; returns the error line. (``bench`` prints
    its stage lines before it; they are not part of the error.)"""
    assert "Traceback" not in err, err
    assert code == FAULT_EXIT == 3, (code, err)
    lines = [x for x in err.strip("\n").splitlines() if not x.startswith("bench stage ")]
    assert len(lines) == 1 and lines[0].startswith("error: cannot write "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    if root is not None:
        assert not temp_files(root), temp_files(root)
    return lines[0]


# ---------------------------------------------------------------- small filesystems (root)


def _mount_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "mounting a size-limited tmpfs needs root (CI runs as root)"
    if shutil.which("mount") is None:
        return "no mount command"
    return None


@pytest.fixture()
def small_fs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``mount(size_kb, ro=False)``: a fresh tmpfs of that size under tmp_path (unmounted at the
    end); skips the test where this process cannot mount one."""
    reason = _mount_unavailable()
    if reason:
        pytest.skip(reason)
    mounted: list[Path] = []

    def mount(size_kb: int, ro: bool = False) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        opts = f"size={size_kb}k" + (",ro" if ro else "")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount(where: Path, opts: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{opts}", str(where)], check=True)


def fill(where: Path, leave_kb: int) -> Path:
    """A filler file that leaves about ``leave_kb`` KiB free on the filesystem at ``where``."""
    st = os.statvfs(where)
    free = st.f_bavail * st.f_frsize
    filler = where / "filler"
    filler.write_bytes(b"\0" * max(0, free - leave_kb * 1024))
    return filler


# ---------------------------------------------------------------- the error itself


def test_fault_line_names_path_cause_and_remedy(monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors import SafetensorError

    from oodbench.errors import fault_from

    monkeypatch.setenv("OODBENCH_CACHE", "/some/cache")
    err = SafetensorError(
        "Error while serializing: I/O error: No space left on device (os error 28)"
    )
    fault = fault_from(err, "/runs/x/cache/a.safetensors")
    assert fault is not None and fault.errno == errno.ENOSPC
    assert str(fault).startswith("cannot write /runs/x/cache/a.safetensors: no space left")
    assert "--runs-dir" in str(fault)
    in_cache = fault_from(OSError(errno.EROFS, "x"), "/some/cache/ab.safetensors")
    assert in_cache is not None and "read-only" in str(in_cache)
    assert "OODBENCH_CACHE" in str(in_cache)
    assert fault_from(OSError(errno.ENOTDIR, "x"), "/a") is None  # bad input, not a fault
    assert fault_from(ValueError("os error 28")) is None
    resumed = fault.with_next("then: oodbench train --resume")
    assert str(resumed).endswith("; then: oodbench train --resume") and resumed.errno == 28
    import pickle

    assert str(pickle.loads(pickle.dumps(resumed))) == str(resumed)  # crosses torchrun ranks


# ---------------------------------------------------------------- one test per write path


def _toy() -> ImageSet:
    return ImageSet(
        images=torch.zeros(4, 1, 8, 8, dtype=torch.uint8),
        labels=torch.arange(4),
        name="toy",
        num_classes=4,
        mean=(0.5,),
        std=(0.5,),
    )


def test_dataset_cache_full_warns_once_and_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dataset cache only saves time: a full one is a warning naming OODBENCH_CACHE, and
    the data are returned all the same."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("OODBENCH_CACHE", str(cache))
    refused = fail_writes(monkeypatch, errno.ENOSPC, "*.safetensors")
    data = data_cache.cached("toy", "test", {"n": 4}, _toy)
    assert torch.equal(data.labels, torch.arange(4)) and refused
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "no space left" in lines[0] and "OODBENCH_CACHE" in lines[0] and str(cache) in lines[0]
    assert not list(cache.rglob("*.safetensors")) and not temp_files(cache)
    monkeypatch.undo()
    monkeypatch.setenv("OODBENCH_CACHE", str(cache))
    data_cache.cached("toy", "test", {"n": 4}, _toy)  # space again: the entry is written
    assert len(list(cache.rglob("*.safetensors"))) == 1


@pytest.fixture()
def read_only_dir(tmp_path: Path, small_fs: Callable[..., Path]) -> Path:
    """A folder this process cannot write to: a read-only tmpfs (chmod does not stop root)."""
    return small_fs(64, ro=True)


def test_dataset_cache_on_a_read_only_filesystem(
    read_only_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real EROFS: not even the lock file can be created; the data still come back."""
    monkeypatch.setenv("OODBENCH_CACHE", str(read_only_dir / "cache"))
    data = data_cache.cached("toy", "test", {"n": 4}, _toy)
    assert len(data) == 4
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0] and "OODBENCH_CACHE" in lines[0], lines


def test_extraction_cache_full(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(run / "cache")
    before = snapshot(run)
    fail_writes(monkeypatch, errno.ENOSPC, f"{run}/cache/*.safetensors")
    code, err = run_main(["score", str(run), "-d", "msp", "--ood", "gaussian", *SCORE], capsys)
    check_fault(code, err, f"{run}/cache/", "no space left", "--runs-dir", root=run)
    assert snapshot(run) == before


def test_scores_file_full(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(run)
    fail_writes(monkeypatch, errno.ENOSPC, f"{run}/scores/*")
    code, err = run_main(["score", str(run), "-d", "maxlogit", "--ood", "gaussian", *SCORE], capsys)
    check_fault(code, err, f"{run}/scores/maxlogit/", "no space left", root=run)
    assert snapshot(run) == before


def test_metrics_csv_on_a_read_only_place(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = (run / "metrics.csv").read_bytes()
    fail_writes(monkeypatch, errno.EROFS, f"{run}/metrics.csv")
    code, err = run_main(["score", str(run), "-d", "maxlogit", "--ood", "gaussian", *SCORE], capsys)
    check_fault(code, err, f"{run}/metrics.csv", "read-only", root=run)
    assert (run / "metrics.csv").read_bytes() == metrics


def test_summary_json_without_permission(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(run)
    fail_writes(monkeypatch, errno.EACCES, f"{run}/summary.json")
    code, err = run_main(["score", str(run), "-d", "maxlogit", "--ood", "gaussian", *SCORE], capsys)
    check_fault(code, err, f"{run}/summary.json", "permission denied", root=run)
    assert snapshot(run) == before


def test_report_file_full(
    scored_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out" / "report.md"
    fail_writes(monkeypatch, errno.ENOSPC, str(out))
    code, err = run_main(["report", str(scored_run.parent), "--out", str(out)], capsys)
    check_fault(code, err, str(out), "no space left", root=tmp_path)
    assert not out.exists()


def test_plots_over_quota(
    scored_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, plots = tmp_path / "out" / "report.md", tmp_path / "out" / "plots"
    fail_writes(monkeypatch, errno.EDQUOT, f"{plots}/*.png")
    argv = ["report", str(scored_run.parent), "--out", str(out), "--plots", str(plots)]
    code, err = run_main(argv, capsys)
    check_fault(code, err, str(plots), "quota", root=tmp_path)
    assert not out.exists() and not list(plots.glob("*.png"))


def test_bench_state_full_says_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    fail_writes(monkeypatch, errno.ENOSPC, f"{out}/ce/config.json")
    argv = ["bench", "--out", str(out), "-d", "msp", "--ood", "gaussian", *BENCH]
    code, err = run_main(argv, capsys)
    line = check_fault(code, err, f"{out}/ce/config.json", "no space left", root=tmp_path)
    assert line.endswith("rerun the same bench with --resume")


# ---------------------------------------------------------------- checkpoints: stop, then resume


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(run_dir / "model.safetensors"))


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 2-epoch run: what every faulted-then-resumed run must equal bitwise."""
    runs = tmp_path_factory.mktemp("reference")
    assert main(["train", "--runs-dir", str(runs), "--name", "ref", "--epochs", "2", *TRAIN]) == 0
    return runs / "ref"


def _check_kept_epoch_1(run_dir: Path, line: str) -> None:
    """What a checkpoint fault in epoch 2 keeps: epoch 1's weights, state and history."""
    assert f"--resume --runs-dir {run_dir.parent} --name {run_dir.name} --epochs 2" in line
    state = load_state(run_dir)
    assert state is not None and (state["epoch"], state["step"]) == (1, 0)
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == [1]
    assert not temp_files(run_dir)


def test_checkpoint_full_stops_keeps_last_and_resumes_bitwise(
    two_epochs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ENOSPC at epoch 2's train_state.pt: exit 3, epoch 1 kept; --resume after the disk has
    room again gives bitwise the weights of a run that never failed."""
    real = os.replace
    calls = {"n": 0}

    def replace(src: str, dst: str) -> None:
        if os.fspath(dst).endswith("train_state.pt"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    argv = ["train", "--runs-dir", str(tmp_path), "--name", "x", "--epochs", "2", *TRAIN]
    code, err = run_main(argv, capsys)
    line = check_fault(code, err, str(tmp_path / "x" / "train_state.pt"), "no space left")
    _check_kept_epoch_1(tmp_path / "x", line)
    monkeypatch.undo()
    resume = ["train", "--resume", "--runs-dir", str(tmp_path), "--name", "x", "-q"]
    assert main(resume) == 0
    assert _same_weights(two_epochs, tmp_path / "x")


def test_checkpoint_on_a_really_full_disk_then_resume_bitwise(
    two_epochs: Path, small_fs: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The same on a real tmpfs: room for one checkpoint but not for epoch 2's temporary copy
    beside it; 'freeing space' grows the filesystem; the resume is bitwise."""
    one = sum((two_epochs / f).stat().st_size for f in ("train_state.pt", "model.safetensors"))
    state = (two_epochs / "train_state.pt").stat().st_size
    fs = small_fs((one + state // 2) // 1024)  # epoch 1 fits, epoch 2's state temp does not
    argv = ["train", "--runs-dir", str(fs), "--name", "x", "--epochs", "2", *TRAIN]
    code, err = run_main(argv, capsys)
    line = check_fault(code, err, str(fs / "x" / "train_state.pt"), "no space left", root=fs)
    _check_kept_epoch_1(fs / "x", line)
    remount(fs, f"size={4 * one // 1024}k")
    assert main(["train", "--resume", "--runs-dir", str(fs), "--name", "x", "-q"]) == 0
    assert _same_weights(two_epochs, fs / "x")


def test_read_only_runs_dir(read_only_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real EROFS before anything is written: the run dir cannot even be made."""
    argv = ["train", "--runs-dir", str(read_only_dir), "--name", "x", "--epochs", "1", *TRAIN]
    code, err = run_main(argv, capsys)
    assert "Traceback" not in err and code == FAULT_EXIT, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0] and str(read_only_dir) in lines[0], lines


# ---------------------------------------------------------------- a cache deleted mid-run


def test_cache_dirs_deleted_mid_score_are_rebuilt(
    scored_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    _isolated_dataset_cache: Path,
) -> None:
    """The run's cache/ vanishes after every extraction, the dataset cache after the first;
    score rebuilds them and gets the numbers of the run whose caches were never touched."""
    run = Path(shutil.copytree(scored_run, tmp_path / "runs" / "tiny"))
    shutil.rmtree(run / "scores")  # every score computed anew from the rebuilt outputs
    datasets = Path(shutil.copytree(_isolated_dataset_cache, tmp_path / "datasets"))
    monkeypatch.setenv("OODBENCH_CACHE", str(datasets))
    real = scoring_run.cached_outputs
    deleted = {"n": 0}

    def cached_then_deleted(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        shutil.rmtree(run / "cache", ignore_errors=True)
        if not deleted["n"]:  # once: rebuilding the datasets is the slow part
            shutil.rmtree(datasets)
        deleted["n"] += 1
        return result

    monkeypatch.setattr(scoring_run, "cached_outputs", cached_then_deleted)
    argv = ["score", str(run), "-d", "msp", "-d", "energy", "--ood", "gaussian",
            "--protocol", "full", "--overwrite", *SCORE]  # fmt: skip
    assert main(argv) == 0
    assert deleted["n"] == 3  # ID test, ID validation (summary), the OOD set
    assert len(list((run / "scores").rglob("*.safetensors"))) == 4  # all computed anew
    new, old = (pd.read_csv(p / "metrics.csv") for p in (run, scored_run))
    new, old = (t[t["ood_dataset"] == "gaussian"] for t in (new, old))
    assert len(new) == 2
    key = ["detector", "ood_dataset"]
    new, old = (
        new.sort_values(key).reset_index(drop=True),
        old.sort_values(key).reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(new[key + VALUES], old[key + VALUES])


# ---------------------------------------------------------------- the probe


@pytest.mark.slow
def test_probe_score_on_a_nearly_full_disk(
    trained_run: Path,
    tmp_path: Path,
    small_fs: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 18's probe: a run dir with 2.4 MB free, ``score -d msp -d knn --ood mnist-5k``:
    one line, exit 3, the run dir unchanged; after freeing space the same numbers as a run
    that never failed."""
    fs = small_fs(16 * 1024)
    run = Path(shutil.copytree(trained_run, fs / "tiny"))
    filler = fill(fs, leave_kb=2400)
    before = {**snapshot(run), "files": sorted(str(p) for p in run.rglob("*") if p.is_file())}
    argv = ["score", str(run), "-d", "msp", "-d", "knn", "--ood", "mnist-5k", *SCORE]
    code, err = run_main(argv, capsys)
    check_fault(code, err, str(run), "no space left", "free space", root=fs)
    files = sorted(str(p) for p in run.rglob("*") if p.is_file() and p.suffix != ".lock")
    assert {**snapshot(run), "files": files} == before
    filler.unlink()
    assert main(argv) == 0
    never_failed = Path(shutil.copytree(trained_run, tmp_path / "plain" / "tiny"))
    assert main(["score", str(never_failed), *argv[2:]]) == 0
    a, b = pd.read_csv(run / "metrics.csv"), pd.read_csv(never_failed / "metrics.csv")
    pd.testing.assert_frame_equal(a.drop(columns="run"), b.drop(columns="run"))
