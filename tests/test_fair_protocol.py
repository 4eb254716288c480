"""The fair protocol: validation and test OOD sets apart, and no choice ever reads a test set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _cli import BENCH, SCORE

from oodbench import data
from oodbench.bench import tausweep
from oodbench.cli import main
from oodbench.data import DATASETS, OFFLINE_OOD, OFFLINE_VAL, holdout
from oodbench.errors import UserError
from oodbench.runs import RunDir
from oodbench.scoring import run as score_run_module
from oodbench.scoring import tune


def test_every_offline_set_has_one_role_and_defaults_test_only_test_sets() -> None:
    assert {DATASETS.get(n).ood_role for n in OFFLINE_OOD} == {"test"}
    assert {DATASETS.get(n).ood_role for n in OFFLINE_VAL} == {"validation"}
    assert not set(OFFLINE_OOD) & set(OFFLINE_VAL)
    assert {"gaussian", "uniform"} <= set(OFFLINE_VAL)


def test_holdout_rule_is_a_fixed_function_of_names() -> None:
    assert holdout.font_group(Path("NimbusSans-Bold.otf")) == "nimb"
    assert holdout.font_group(Path("cmr10.ttf")) == holdout.font_group(Path("cmtt10.ttf")) == "cm"
    assert holdout.texture_group("textures/gothic_wall/a.jpg") == "textures/gothic_wall"
    parts = {g: holdout.part_of(g) for g in ("nimb", "deja", "stix", "Latn", "Grek", "Arab")}
    assert set(parts.values()) <= set(holdout.PARTS)
    assert parts == {g: holdout.part_of(g) for g in parts}  # deterministic


@pytest.mark.slow
def test_real_validation_sets_share_no_group_with_their_test_sets() -> None:
    for test, val, key in (("notmnist-fonts", "notmnist-fonts-val", "fonts"),
                           ("world-scripts", "world-scripts-val", "classes")):  # fmt: skip
        a, b = data.load(test).meta[key], data.load(val).meta[key]
        assert a and b and not set(a) & set(b)
    fonts = data.load("notmnist-fonts-val").meta["fonts"]
    assert {holdout.part_of(holdout.font_group(Path(f))) for f in fonts} == {"validation"}


def test_a_set_asked_for_in_both_roles_is_one_line_exit_2(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["score", str(run), "-d", "msp", "--tune", "--ood", "mnist-5k", "--val-ood",
            "mnist-5k", *SCORE]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "both a validation set" in err and len(err.splitlines()) == 1
    # The default validation group gives way to a set the user asked to test on.
    cfg = score_run_module.ScoreConfig(tune=True, ood=("gaussian",))
    assert "gaussian" not in tune.val_names(cfg, "fashion-mnist", ["gaussian"])
    assert tune.val_names(score_run_module.ScoreConfig(), "fashion-mnist", ["mnist-5k"]) == []


def _is_test_read(name: str, split: str) -> bool:
    spec = DATASETS.get(name)
    return split == "test" and (spec.role == "id" or spec.ood_role == "test")


@pytest.mark.slow  # tens of seconds: CI runs it in the slow pass
def test_selection_never_loads_a_test_set(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During tune.choose every test set (the ID test split, test OOD sets, their cached
    outputs) raises; the selection still completes and the test sets are scored after it."""
    run = Path(shutil.copytree(trained_run, tmp_path / "tiny"))
    real_load, real_outputs, real_choose = data.load, score_run_module.Run.outputs, tune.choose
    reads: list[tuple[str, str, bool]] = []
    selecting = [False]

    def guarded_load(name: str, split: str = "test", **kw):  # type: ignore[no-untyped-def]
        reads.append((name, split, selecting[0]))
        if selecting[0] and _is_test_read(name, split):
            raise AssertionError(f"selection loaded test set {name} ({split})")
        return real_load(name, split, **kw)

    def guarded_outputs(self, key, data_, like=None):  # type: ignore[no-untyped-def]
        name, split = key.rsplit("-", 1)
        if selecting[0] and _is_test_read(name, split):
            raise AssertionError(f"selection read cached outputs of {key}")
        return real_outputs(self, key, data_, like)

    def guarded_choose(*args, **kwargs):  # type: ignore[no-untyped-def]
        selecting[0] = True
        try:
            return real_choose(*args, **kwargs)
        finally:
            selecting[0] = False

    monkeypatch.setattr(data, "load", guarded_load)
    monkeypatch.setattr(score_run_module.Run, "outputs", guarded_outputs)
    monkeypatch.setattr(tune, "choose", guarded_choose)
    argv = ["score", str(run), "-d", "msp", "-d", "react", "-d", "odin", "--tune",
            "--ood", "mnist-5k", "--val-ood", "gaussian", "--val-ood", "world-scripts-val",
            "--batch-size", "4096", *SCORE]  # fmt: skip
    assert main(argv) == 0
    during = {(n, s) for n, s, sel in reads if sel}
    assert ("gaussian", "test") in during and ("world-scripts-val", "test") in during
    assert {("fashion-mnist", "test"), ("mnist-5k", "test")} <= {(n, s) for n, s, _ in reads}

    metrics = RunDir(run).read_metrics()
    tuned = metrics[metrics["detector"].isin(["react[tuned]", "odin[tuned]"])]
    assert set(tuned["ood_dataset"]) == {"mnist-5k"} and len(tuned) == 2
    assert tuned["params"].str.contains("=").all()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["val_ood"] == ["gaussian", "world-scripts-val"]
    assert "mnist-5k" in summary["test_ood"] and "gaussian" not in summary["test_ood"]
    assert summary["tuned"]["react[tuned]"] == tuned.set_index("detector")["params"]["react[tuned]"]
    assert {"msp", "react[tuned]", "odin[tuned]"} <= set(summary["validation"])


def test_tau_and_headline_choices_read_validation_results_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = []
    for name, loss, tau, acc, fpr in (("ce", "ce", None, 90.0, 60.0),
                                      ("ln1", "logitnorm", 0.01, 85.0, 5.0),
                                      ("ln2", "logitnorm", 0.04, 89.5, 20.0),
                                      ("ln3", "logitnorm", 1.0, 89.9, 40.0)):  # fmt: skip
        d = tmp_path / name
        d.mkdir()
        cfg = {"loss": loss, "loss_params": {"tau": tau} if tau else {}}
        (d / "config.json").write_text(json.dumps(cfg))
        validation = {
            "msp": {"fpr95": fpr, "auroc": 80.0},
            "knn": {"fpr95": fpr / 10 if loss == "ce" else 70.0, "auroc": 90.0},
        }
        (d / "summary.json").write_text(json.dumps({"val_accuracy": acc,
                                                    "validation": validation}))  # fmt: skip
        dirs.append(d)

    def no_test_reads(self):  # type: ignore[no-untyped-def]
        raise AssertionError("a choice read metrics.csv (test results)")

    monkeypatch.setattr(RunDir, "read_metrics", no_test_reads)
    assert tausweep.choose_tau(tausweep.selection_table(dirs)) == 0.04  # 0.01 loses accuracy
    by_loss = {"ce": dirs[:1], "logitnorm": dirs[1:]}
    assert tausweep.best_on_validation(by_loss, ["msp", "knn"]) == "knn"
    with pytest.raises(UserError, match="no validation result"):
        tausweep.best_on_validation(by_loss, ["energy"])


def test_tiny_bench_tunes_and_names_validation_and_test_sets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    argv = ["bench", "--out", str(out), "-d", "msp", "-d", "energy", "--ood", "mnist-5k",
            "--val-ood", "uniform", *BENCH]  # fmt: skip
    assert main(argv) == 0
    assert "headline" in capsys.readouterr().out
    for run in ("ce", "logitnorm"):
        summary = json.loads((out / run / "summary.json").read_text())
        assert summary["val_ood"] == ["uniform"] and summary["test_ood"] == ["mnist-5k"]
        assert set(summary["tuned"]) == {"energy[tuned]"}
        metrics = pd.read_csv(out / run / "metrics.csv")
        assert set(metrics["ood_dataset"]) == {"mnist-5k"}
        assert set(metrics["detector"]) == {"msp", "energy[tuned]"}
    report = (out / "report.md").read_text()
    assert "uniform" in report and "mnist-5k" in report
    shutil.rmtree(out)


def test_default_validation_is_real_images_and_falls_back_to_noise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real held-out images are the default (the study measured them the better proxy); a
    machine without them tunes on the paper's noise instead of failing."""
    from oodbench import data
    from oodbench.data import NOISE_VAL, REAL_VAL

    cfg = score_run_module.ScoreConfig(tune=True)
    assert tune.val_names(cfg, "fashion-mnist", []) == list(REAL_VAL)
    # a test set given to --ood leaves the default group; the other real sets stay
    assert tune.val_names(cfg, "fashion-mnist", ["world-scripts-val"]) == [
        n for n in REAL_VAL if n != "world-scripts-val"
    ]
    monkeypatch.setitem(data.VAL_GROUPS, "real", ("cifar10",))  # not on this machine
    assert tune.val_names(cfg, "fashion-mnist", []) == list(NOISE_VAL)
