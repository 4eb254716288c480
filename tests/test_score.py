"""``score`` end to end on a real tiny run: rows, files, cache hits, resumability, bad input."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from oodbench.cli import main
from oodbench.config import ScoreConfig, TrainConfig
from oodbench.errors import UserError
from oodbench.scoring import run as scoring

OOD = ("gaussian", "mnist-5k")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run per session: small_cnn, 1 epoch on 512 Fashion-MNIST images."""
    from oodbench.train.loop import train

    runs = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(epochs=1, subset=512, val_size=500, batch_size=128, device="cpu")
    return train(cfg, runs, name="tiny", quiet=True)


def cfg_for(run: Path, **kw) -> ScoreConfig:
    return ScoreConfig(run_dir=str(run), ood=OOD, device="cpu", **kw)


def test_score_end_to_end_then_cache_hit(run_dir: Path) -> None:
    table = scoring.score_run(cfg_for(run_dir, detectors=("energy", "knn")), quiet=True)
    assert sorted(zip(table.detector, table.ood_dataset, strict=True)) == sorted(
        (d, o) for d in ("energy", "knn") for o in OOD
    )
    assert "fashion-mnist-test" not in table.attrs["cache_hits"]
    saved = pd.read_csv(run_dir / "metrics.csv")
    assert list(saved.columns) == scoring.COLUMNS
    assert saved[["fpr95", "auroc", "aupr_in", "aupr_out"]].stack().between(0, 100).all()
    assert (saved.n_id == 10000).all() and (saved.convention == "id-positive").all()
    scores = run_dir / "scores" / "energy" / "fashion-mnist.safetensors"
    assert scores.is_file() and (run_dir / "scores" / "knn" / "gaussian.safetensors").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["n_val"] == 500 and summary["temperature"] > 0
    assert 0 <= summary["ece_ts"] <= 100 and 0 <= summary["id_accuracy"] <= 100

    again = scoring.score_run(cfg_for(run_dir, detectors=("msp",)), quiet=True)
    hits = set(again.attrs["cache_hits"])
    assert {"fashion-mnist-test", "fashion-mnist-val", "gaussian-test", "mnist-5k-test"} <= hits
    assert len(again) == 2


def test_resumable_rows_are_kept_unless_overwrite(run_dir: Path) -> None:
    cfg = cfg_for(run_dir, detectors=("maxlogit",))
    scoring.score_run(cfg, quiet=True)
    path = run_dir / "metrics.csv"
    table = pd.read_csv(path)
    mark = (table.detector == "maxlogit") & (table.ood_dataset == "gaussian")
    table.loc[mark, "auroc"] = -1.0  # a sentinel a recomputation would replace
    table.to_csv(path, index=False)
    assert len(scoring.score_run(cfg, quiet=True)) == 0
    assert (pd.read_csv(path).loc[mark, "auroc"] == -1.0).all()
    redone = scoring.score_run(cfg_for(run_dir, detectors=("maxlogit",), overwrite=True), True)
    assert len(redone) == 2
    after = pd.read_csv(path)
    assert len(after) == len(table)  # replaced, not appended
    assert (after[(after.detector == "maxlogit")].auroc > 0).all()


def test_paper_protocol_and_ood_positive_rows(run_dir: Path) -> None:
    cfg = cfg_for(run_dir, detectors=("energy",), protocol="paper", positive="ood")
    table = scoring.score_run(cfg, quiet=True)
    assert (table.n_ood == 2000).all() and (table.protocol == "paper").all()
    assert (table.fpr95_std >= 0).all() and (table.auroc_std > 0).any()
    assert (table.convention == "ood-positive").all()
    full = pd.read_csv(run_dir / "metrics.csv")
    full = full[(full.protocol == "full") & (full.detector == "energy")]
    assert full.fpr95_std.isna().all()


def test_metric_row_paper_draws_are_seeded() -> None:
    g = torch.Generator().manual_seed(0)
    id_s, ood_s = torch.randn(500, generator=g) + 1, torch.randn(3000, generator=g)
    cfg = ScoreConfig(protocol="paper")
    a, b = scoring.metric_row(id_s, ood_s, cfg), scoring.metric_row(id_s, ood_s, cfg)
    assert a == b and a["n_ood"] == 100 and a["auroc_std"] > 0
    full = scoring.metric_row(id_s, ood_s, ScoreConfig())
    assert math.isnan(full["auroc_std"]) and full["n_ood"] == 3000
    assert abs(a["auroc"] - full["auroc"]) < 3


def test_flags_and_names_are_checked() -> None:
    assert len(scoring.build_detectors(ScoreConfig(detectors=("all", "msp")))) >= 14
    dets = scoring.build_detectors(ScoreConfig(detectors=("knn", "energy"), k=7))
    assert [d.label for d in dets] == ["knn[k=7]", "energy"]
    with pytest.raises(UserError, match="--k applies to none"):
        scoring.build_detectors(ScoreConfig(detectors=("energy",), k=7))
    with pytest.raises(UserError, match="--temperature applies to none"):
        scoring.build_detectors(ScoreConfig(detectors=("knn",), temperature=2.0))
    with pytest.raises(UserError, match="k must be"):
        ScoreConfig(k=0)


def test_cli_bad_input_is_one_line_exit_2(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = str(run_dir.parent)
    cases = [
        (["score", "--runs-dir", str(tmp_path), "--detector", "energy"], "no trained run"),
        (["score", str(tmp_path / "nope"), "--detector", "energy"], "does not exist"),
        (["score", str(tmp_path), "--detector", "energy"], "not a trained run"),
        (["score", "--runs-dir", runs, "--detector", "enrgy"], "did you mean 'energy'"),
        (["score", "--runs-dir", runs, "--detector", "knn", "--k", "100000", "--ood",
          "gaussian", "--device", "cpu"], "larger than the 512"),
        (["score", "--runs-dir", runs, "--detector", "energy", "--k", "3"], "--k applies"),
        (["score", "--runs-dir", runs, "--ood", "mnist5k", "--device", "cpu"], "did you mean"),
        (["score", "--runs-dir", runs, "--protocol", "half"], "--protocol must be"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and message in err and "\n" not in err, err


def test_zero_sample_ood_set_is_a_user_error(run_dir: Path, monkeypatch) -> None:
    from oodbench import data

    real = data.load

    def empty_gaussian(name, split="test", **kw):
        ds = real(name, split, **kw)
        return ds.subset(slice(0, 0)) if name == "gaussian" else ds

    monkeypatch.setattr(data, "load", empty_gaussian)
    with pytest.raises(UserError, match="zero samples"):
        scoring.score_run(cfg_for(run_dir, detectors=("entropy",), overwrite=True), quiet=True)


def _merge_many(path: str, who: int) -> None:
    for i in range(25):
        row = {c: 0 for c in scoring.COLUMNS}
        row.update(detector=f"d{who}", ood_dataset=f"o{i}", protocol="full", convention="id")
        scoring.merge_metrics(Path(path), [row])


def test_two_processes_merging_lose_no_row(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    ctx = mp.get_context("fork")  # fork: no re-import of torch, the race stays tight
    procs = [ctx.Process(target=_merge_many, args=(str(path), w)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    table = pd.read_csv(path)
    assert len(table) == 50 and len(table.drop_duplicates(scoring.KEY)) == 50
    assert not list(tmp_path.glob(".metrics.csv.*.tmp"))


@pytest.mark.slow
def test_two_concurrent_score_commands_keep_every_row(run_dir: Path) -> None:
    """Two real `oodbench score` processes on the same run, different detectors, at once."""
    cmd = [sys.executable, "-m", "oodbench", "score", str(run_dir), "--ood", "gaussian",
           "--device", "cpu", "-q", "--overwrite", "--detector"]  # fmt: skip
    scoring.score_run(cfg_for(run_dir, detectors=("msp",)), quiet=True)  # rows to keep
    before = set(zip(*[pd.read_csv(run_dir / "metrics.csv")[c] for c in scoring.KEY], strict=True))
    procs = [subprocess.Popen([*cmd, d], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
             for d in ("gen", "rmd")]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    table = pd.read_csv(run_dir / "metrics.csv")
    got = set(zip(*[table[c] for c in scoring.KEY], strict=True))
    new = {(d, "gaussian", "full", "id-positive") for d in ("gen", "rmd")}
    assert before | new <= got and len(table) == len(got)


def test_cli_as_typed_scores_the_newest_run(
    run_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`oodbench score --detector energy` with RUN_DIR defaulting to the newest run."""
    monkeypatch.chdir(run_dir.parent.parent)
    argv = ["score", "--runs-dir", run_dir.parent.name, "--detector", "energy", "--ood",
            "gaussian", "--device", "cpu", "--overwrite", "-q"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "energy" in out and "gaussian" in out
