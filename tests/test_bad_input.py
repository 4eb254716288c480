"""Bad input through the real CLI: exit 2, one ``error:`` line, no traceback, nothing half-written.

Most cases run ``oodbench.cli.main`` in-process (capsys), a good number run ``python -m oodbench``
in a fresh process to prove that no traceback reaches the user's terminal. Every case also checks
that the run dir's result files are byte-for-byte unchanged and that no ``*.tmp`` is left.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _cli import SCORE, SUBSET, TINY

from oodbench.cli import main


@pytest.fixture()
def runs(scored_run: Path) -> Path:
    """The runs dir holding the shared scored run "tiny" (read only: a failed command must not
    change it; a test that corrupts a run takes ``run``, a private copy)."""
    return scored_run.parent


def snapshot(*roots: Path) -> dict[str, str]:
    """Content hash of every result file under ``roots`` (locks and caches excluded: a failed
    command may leave a complete cache entry or an empty lock file, never a changed result)."""
    out = {}
    for root in roots:
        if not root.exists():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.suffix != ".lock" and "cache" not in p.relative_to(root).parts:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temp_files(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*.tmp")]


def check(
    argv: list[str],
    *needles: str,
    watch: tuple[Path, ...] = (),
    capsys: pytest.CaptureFixture[str] | None = None,
) -> str:
    """Run the CLI (in-process when ``capsys`` is given, else in a new process) and assert the
    contract for bad input; return the error line."""
    before = snapshot(*watch)
    if capsys is None:
        proc = subprocess.run(
            [sys.executable, "-m", "oodbench", *argv], capture_output=True, text=True, timeout=300
        )
        code, err = proc.returncode, proc.stderr
    else:
        capsys.readouterr()
        code, err = main(argv), capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code == 2, (argv, code, err)
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert snapshot(*watch) == before, "a failed command changed a result file"
    assert not temp_files(*watch), temp_files(*watch)
    return lines[0]


# ---------------------------------------------------------------- names with a suggestion


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--dataset", "fashon-mnist"], ["'fashon-mnist'", "did you mean 'fashion-mnist'"]),
        (["--model", "smal_cnn"], ["'smal_cnn'", "did you mean 'small_cnn'"]),
        (["--loss", "logitnrom"], ["'logitnrom'", "did you mean 'logitnorm'"]),
        (["--schedule", "cosin"], ["'cosin'", "did you mean 'cosine'"]),
        (["--preset", "paper-cifar1"], ["'paper-cifar1'", "paper-cifar10"]),
    ],
)
def test_train_unknown_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    check(["train", "--runs-dir", str(tmp_path), *argv, *TINY], *needles, watch=(tmp_path,),
          capsys=capsys)  # fmt: skip


def test_score_unknown_detector_in_a_new_process(runs: Path) -> None:
    check(["score", "--runs-dir", str(runs), "-d", "enrgy"], "'enrgy'",
          "did you mean 'energy'", watch=(runs,))  # fmt: skip


def test_score_unknown_ood_set(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["score", str(runs / "tiny"), "-d", "msp", "--ood", "mnist5k", *SCORE]
    check(argv, "'mnist5k'", "did you mean 'mnist-5k'", watch=(runs,), capsys=capsys)


def test_score_ood_set_that_is_the_id_set(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["score", str(runs / "tiny"), "-d", "msp", "--ood", "fashion-mnist", *SCORE]
    check(argv, "fashion-mnist", "ID dataset", watch=(runs,), capsys=capsys)


def test_report_unknown_format_with_suggestion(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check(["report", str(runs / "tiny"), "--format", "markdwn"], "'markdwn'",
          "did you mean 'markdown'", watch=(runs,), capsys=capsys)  # fmt: skip
    check(["report", str(runs / "tiny"), "--format", "xml"], "--format", "'xml'", "markdown",
          watch=(runs,), capsys=capsys)  # fmt: skip


def test_report_unknown_plot_detector(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["report", str(runs / "tiny"), "-f", "markdown", "--plots", str(tmp_path / "p"),
            "--plot-detector", "enrgy"]  # fmt: skip
    check(argv, "--plot-detector", "did you mean 'energy'", watch=(runs,), capsys=capsys)
    assert not (tmp_path / "p").exists()


def test_bench_unknown_preset_and_detector_fail_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    check(["bench", "--preset", "ofline", "--out", str(out)], "'ofline'", "offline",
          capsys=capsys)  # fmt: skip
    check(["bench", "--out", str(out), "-d", "enrgy", "--epochs", "1", "--subset", "64", "-q"],
          "did you mean 'energy'", capsys=capsys)  # fmt: skip
    check(["bench", "--out", str(out), "--ood", "gausian", "--epochs", "1", "-q"],
          "did you mean 'gaussian'", capsys=capsys)  # fmt: skip
    assert not out.exists(), "bench trained before checking its names"


# ---------------------------------------------------------------- numbers out of range


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--tau", "0"], "--tau"),
        (["--tau", "-1"], "--tau"),
        (["--tau", "nan"], "--tau"),
        (["--tau", "inf"], "--tau"),
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--lr", "0"], "--lr"),
        (["--lr", "-0.1"], "--lr"),
        (["--warmup-epochs", "-1"], "--warmup-epochs"),
        (["--epochs", "abc"], "--epochs"),
    ],
)
def test_train_bad_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    line = check(["train", "--runs-dir", str(tmp_path), *TINY, *argv], flag, watch=(tmp_path,),
                 capsys=capsys)  # fmt: skip
    assert argv[1] in line or "integer" in line  # the bad value is named
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "needles"),
    [(["--resume"], ["no run", "drop --resume"]), (["--resume", "--overwrite"], ["contradict"])],
)
def test_train_resume_with_no_run_or_with_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    check(["train", "--runs-dir", str(tmp_path), "--name", "r", *argv, *TINY], *needles,
          watch=(tmp_path,), capsys=capsys)  # fmt: skip
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["-d", "knn", "--k", "0"], ["--k", "0"]),
        (["-d", "msp", "--k", "3"], ["--k applies to none", "knn"]),
        (["-d", "energy", "--temperature", "0"], ["--temperature"]),
        (["-d", "msp", "--batch-size", "0"], ["--batch-size"]),
        (["-d", "msp", "--protocol", "half"], ["--protocol", "'half'"]),
        (["-d", "msp", "--positive", "both"], ["--positive", "'both'"]),
    ],
)
def test_score_bad_numbers_and_flags(
    runs: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    check(["score", str(runs / "tiny"), "--ood", "gaussian", *argv, *SCORE], *needles,
          watch=(runs,), capsys=capsys)  # fmt: skip


def test_knn_k_larger_than_the_training_set(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["score", str(runs / "tiny"), "-d", "knn", "--k", "100000", "--ood", "gaussian", *SCORE]
    line = check(argv, "k=100000", f"larger than the {SUBSET} training samples",
                 watch=(runs,), capsys=capsys)  # fmt: skip
    assert line.count(str(SUBSET)) == 2  # and names the largest k that works


def test_bench_bad_seeds_and_taus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    check(["bench", "--out", str(out), "--seeds", "a,b"], "--seeds", "'a,b'", "0,1,2",
          capsys=capsys)  # fmt: skip
    check(["bench", "--out", str(out), "--seeds", "1.5"], "--seeds", "'1.5'", capsys=capsys)
    check(["bench", "--out", str(out), "--seeds", "0,0"], "--seeds", "duplicates", capsys=capsys)
    check(["bench", "--out", str(out), "--tau-sweep", "0.1,x"], "--tau-sweep", capsys=capsys)
    check(["bench", "--out", str(out), "--tau-sweep", "0.1,0"], "--tau-sweep", capsys=capsys)
    assert not out.exists()


def test_bench_resume_and_overwrite_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check(["bench", "--out", str(tmp_path / "b"), "--resume", "--overwrite"], "--resume",
          "--overwrite", capsys=capsys)  # fmt: skip
    assert not (tmp_path / "b").exists()


# ---------------------------------------------------------------- data that is too small or bad


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--subset", "100000"], ["--subset 100000", "larger than", "smaller --subset"]),
        (["--val-size", "100000"], ["--val-size 100000", "no training data"]),
    ],
)
def test_train_data_too_small(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    tiny = ["--epochs", "1", "--device", "cpu", "-q"]
    check(["train", "--runs-dir", str(tmp_path), "--name", "r", *tiny, *argv], *needles,
          capsys=capsys)  # fmt: skip
    assert not temp_files(tmp_path)


@pytest.mark.parametrize("bad", [["--subset", "100000"], ["--dataset", "fashon-mnist"]])
def test_train_that_fails_on_its_data_leaves_no_run_dir(tmp_path: Path, bad: list[str]) -> None:
    assert main(["train", "--runs-dir", str(tmp_path), "--name", "r", *bad, "--device", "cpu",
                 "-q"]) == 2  # fmt: skip
    assert not (tmp_path / "r").exists()


def _corrupt_idx_root(tmp_path: Path) -> Path:
    """A --root with Fashion-MNIST whose test images file is cut in the middle of the gzip."""
    src = Path("/usr/share/datasets/fashion-mnist")
    if not src.is_dir():
        pytest.skip("Fashion-MNIST (dataset-fashion-mnist) is not installed")
    root = tmp_path / "root"
    shutil.copytree(src, root)
    images = root / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:3000])
    return root


def test_corrupt_idx_file_via_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _corrupt_idx_root(tmp_path)
    runs = tmp_path / "runs"
    check(["train", "--runs-dir", str(runs), "--root", str(root), *TINY],
          "t10k-images-idx3-ubyte.gz", "re-install or re-download", capsys=capsys)  # fmt: skip
    assert not temp_files(runs)


def test_dataset_folder_with_no_images(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "LSUN" / "test").mkdir(parents=True)
    (tmp_path / "LSUN" / "test" / "README.txt").write_text("no images here")
    argv = ["score", str(runs / "tiny"), "-d", "msp", "--ood", "lsun-crop", "--root",
            str(tmp_path), *SCORE]  # fmt: skip
    check(argv, "lsun-crop", "no images", "LSUN", watch=(runs,), capsys=capsys)


def test_ood_set_with_zero_samples(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder whose only image cannot be decoded: the OOD set has zero samples."""
    (tmp_path / "LSUN" / "test").mkdir(parents=True)
    (tmp_path / "LSUN" / "test" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg" * 50)
    argv = ["score", str(runs / "tiny"), "-d", "msp", "--ood", "lsun-crop", "--root",
            str(tmp_path), *SCORE]  # fmt: skip
    check(argv, "lsun-crop", "no samples", watch=(runs,), capsys=capsys)


def test_corrupt_fonts_give_an_empty_set_error(
    runs: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fonts come from fixed system folders (no --root), so the folder list is redirected to one
    holding only a damaged font: every font is dropped and the set is refused as empty. That one
    damaged font among good ones is skipped is tests/test_data_offline.py's job."""
    from oodbench.data.sources import fonts

    (tmp_path / "fonts").mkdir()
    (tmp_path / "fonts" / "Broken-Regular.ttf").write_bytes(b"\x00\x01\x00\x00garbage" * 40)
    monkeypatch.setattr(fonts, "font_dirs", lambda: [tmp_path / "fonts"])
    argv = ["score", str(runs / "tiny"), "-d", "msp", "--ood", "notmnist-fonts", *SCORE]
    check(argv, "notmnist-fonts", watch=(runs,), capsys=capsys)


# ---------------------------------------------------------------- run dirs and checkpoints


def test_missing_run_dir(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check(["score", str(tmp_path / "nope"), "-d", "msp"], "nope", "does not exist",
          watch=(runs,), capsys=capsys)  # fmt: skip


def test_empty_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    check(["score", str(tmp_path / "empty"), "-d", "msp"], "not a trained run", "oodbench train",
          watch=(tmp_path,), capsys=capsys)  # fmt: skip
    check(["score", "--runs-dir", str(tmp_path), "-d", "msp"], "no trained run",
          watch=(tmp_path,), capsys=capsys)  # fmt: skip


def test_garbage_weights(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run / "model.safetensors").write_bytes(os.urandom(5000))
    check(["score", str(run), "-d", "msp", "--ood", "gaussian", *SCORE], "model.safetensors",
          "not a safetensors file", watch=(run,), capsys=capsys)  # fmt: skip


def test_corrupt_config_json(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run / "config.json").write_text("{")
    check(["score", str(run), "-d", "msp", "--ood", "gaussian", *SCORE], "config.json",
          "corrupt", watch=(run,), capsys=capsys)  # fmt: skip


def test_corrupt_metrics_csv_is_refused_not_overwritten(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "metrics.csv").write_bytes(os.urandom(64) + b"\n\xff\xfe")
    check(["score", str(run), "-d", "energy", "--ood", "gaussian", *SCORE], "metrics.csv",
          watch=(run,), capsys=capsys)  # fmt: skip
    check(["report", str(run), "-f", "csv"], "metrics.csv", watch=(run,), capsys=capsys)


def test_failed_download_is_one_line(
    runs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No network (simulated: tests never touch the network): one line, not urllib's traceback."""
    import urllib.error

    from oodbench import data

    real = data.load

    def offline(name: str, *args: object, **kw: object):  # type: ignore[no-untyped-def]
        if name == "cifar10":
            raise urllib.error.URLError("[Errno -2] Name or service not known")
        return real(name, *args, **kw)

    monkeypatch.setattr(data, "load", offline)
    argv = ["score", str(runs / "tiny"), "-d", "msp", "--ood", "cifar10", "--download", *SCORE]
    check(argv, "download failed", "--root", watch=(runs,), capsys=capsys)


def test_corrupt_output_cache_is_recomputed(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Documented in oodbench/extract.py: a damaged cache file is a warning and is rebuilt."""
    from oodbench.scoring.extract import read_outputs

    cache = run / "cache" / "gaussian-test.safetensors"
    cache.write_bytes(cache.read_bytes()[:1000])
    argv = ["score", str(run), "-d", "maxlogit", "--ood", "gaussian", *SCORE]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "corrupt" in err and "recomputing" in err
    assert len(read_outputs(cache)) == 10000  # rewritten whole
    assert not temp_files(run)


# ---------------------------------------------------------------- names and output paths


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "..", ".", ".hidden"])
def test_run_names_cannot_escape_runs_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    line = check(["train", "--runs-dir", str(runs), "--name", name, *TINY], "invalid run name",
                 watch=(tmp_path,), capsys=capsys)  # fmt: skip
    assert repr(name) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"] and not any(runs.iterdir())


def test_run_name_escape_in_a_new_process(tmp_path: Path) -> None:
    check(["train", "--runs-dir", str(tmp_path / "runs"), "--name", "../x"], "'../x'",
          watch=(tmp_path,))  # fmt: skip
    assert not (tmp_path / "x").exists()


def test_runs_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("not a folder")
    check(["train", "--runs-dir", str(tmp_path / "afile"), *TINY], "afile",
          capsys=capsys)  # fmt: skip


def test_report_out_and_plots_paths(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "existing"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    tiny = str(runs / "tiny")
    check(["report", tiny, "-f", "markdown", "--out", str(folder)], "--out", "is a folder",
          watch=(tmp_path, runs), capsys=capsys)  # fmt: skip
    afile = tmp_path / "plots.png"
    afile.write_bytes(b"x")
    check(["report", tiny, "-f", "markdown", "--plots", str(afile)], "--plots", "is a file",
          watch=(tmp_path, runs), capsys=capsys)  # fmt: skip
    # --out is checked before any plot is drawn: no plots folder appears for a refused report
    check(["report", tiny, "-f", "markdown", "--out", str(folder), "--plots",
           str(tmp_path / "p")], "--out", watch=(runs,), capsys=capsys)  # fmt: skip
    assert not (tmp_path / "p").exists() and (folder / "keep.txt").read_text() == "mine"
    check(["report", tiny, "-f", "json", "--out", str(afile / "r.json")], "plots.png",
          "is a file, not a folder", watch=(tmp_path, runs), capsys=capsys)  # fmt: skip


def test_bench_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("not a folder")
    check(["bench", "--out", str(tmp_path / "afile"), "--epochs", "1", "-q"], "--out",
          "is a file", watch=(tmp_path,), capsys=capsys)  # fmt: skip


# ---------------------------------------------------------------- report input


def test_report_with_no_scored_runs(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "trained-only").mkdir()
    shutil.copy(runs / "tiny" / "config.json", tmp_path / "trained-only" / "config.json")
    check(["report", "--runs-dir", str(tmp_path), "-f", "markdown"], "no scored runs",
          "oodbench score", watch=(tmp_path,), capsys=capsys)  # fmt: skip


def test_report_missing_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check(["report", str(tmp_path / "nope"), "-f", "csv"], "nope", "does not exist",
          capsys=capsys)  # fmt: skip


def test_report_mixed_conventions(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = Path(shutil.copytree(runs / "tiny", tmp_path / "a"))
    b = Path(shutil.copytree(runs / "tiny", tmp_path / "b"))
    table = pd.read_csv(b / "metrics.csv")
    table["convention"] = "ood-positive"
    table.to_csv(b / "metrics.csv", index=False)
    check(["report", str(a), str(b), "-f", "markdown", "--out", str(tmp_path / "r.md")],
          "mix", "id-positive", "ood-positive", "--convention", watch=(tmp_path,),
          capsys=capsys)  # fmt: skip
    assert not (tmp_path / "r.md").exists()


def test_report_corrupt_scores_file_with_plots(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scores = run / "scores" / "msp" / "gaussian.safetensors"
    scores.write_bytes(os.urandom(300))
    argv = ["report", str(run), "-f", "markdown", "--plots", str(tmp_path / "plots")]
    check(argv, "gaussian.safetensors", "corrupt", watch=(run,), capsys=capsys)
    assert not temp_files(tmp_path)
