"""The loss x detector matrix (issue 13): numbers on a hand-made frame, and `bench --losses`
refusing bad names. The matrix end to end (a 2-loss x 2-seed tiny bench, every report format,
the heatmap) is tests/test_bench_pool.py's, on the serial bench that test compares with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _cli import BENCH

from oodbench.cli import main
from oodbench.report.load import Run
from oodbench.report.matrix import loss_matrix, matrix_tables, wanted
from oodbench.report.tables import Group, make_groups


def _run(loss: str, seed: int) -> Run:
    return Run(Path(f"/r/{loss}{seed}"), f"{loss}{seed}", loss, None, {}, "m", "fashion-mnist",
               seed, {"id_accuracy": 90.0 + seed})  # fmt: skip


def _tidy(values: dict[tuple[str, int], tuple[float, float]]) -> pd.DataFrame:
    """Two OOD sets per run; (loss, seed) -> the two sets' FPR95 (AUROC = 100 - FPR95)."""
    rows = []
    for (loss, seed), fprs in values.items():
        for ood, fpr in zip(("a", "b"), fprs, strict=True):
            rows.append({"run": f"/r/{loss}{seed}", "detector": "msp", "ood_dataset": ood,
                         "protocol": "paper", "convention": "id-positive", "fpr95": fpr,
                         "auroc": 100 - fpr, "aupr": 50.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_matrix_averages_sets_then_pairs_seeds_against_ce() -> None:
    values = {("ce", 0): (40.0, 60.0), ("ce", 1): (44.0, 64.0), ("ce", 2): (42.0, 58.0),
              ("t2fnorm", 0): (30.0, 50.0), ("t2fnorm", 1): (35.0, 51.0),
              ("t2fnorm", 2): (31.0, 49.0)}  # fmt: skip
    groups = make_groups([_run(loss, seed) for loss, seed in values])
    assert wanted(groups)
    mx = loss_matrix(_tidy(values), groups)
    ce, t2 = (g.label for g in groups)
    # mean over the two sets, then over seeds
    assert mx.value(ce, "msp", "fpr95") == pytest.approx(np.mean([50, 54, 50]))
    # paired per seed: (40-50, 43-54, 40-50) -> mean -31/3, all negative: significant
    assert mx.value(t2, "msp", "fpr95_delta") == pytest.approx(-31 / 3)
    assert mx.value(t2, "msp", "fpr95_significant") == 1.0
    lo, hi = mx.value(t2, "msp", "fpr95_delta_lo"), mx.value(t2, "msp", "fpr95_delta_hi")
    assert lo < -31 / 3 < hi < 0
    assert mx.value(t2, "msp", "auroc_delta") == pytest.approx(31 / 3)
    titles = [t.title for t in matrix_tables(mx)]
    assert titles[:4] == ["FPR95 ↓: loss × detector", "AUROC ↑: loss × detector",
                          f"ΔFPR95 vs {ce}", f"ΔAUROC vs {ce}"]  # fmt: skip
    change = matrix_tables(mx)[2]
    assert change.rows[0][1].text == "-10.33* ✓" and change.rows[0][1].tone == "good"


def test_a_change_that_flips_sign_across_seeds_is_not_significant() -> None:
    values = {("ce", 0): (40.0, 40.0), ("ce", 1): (40.0, 40.0),
              ("regmixup", 0): (45.0, 45.0), ("regmixup", 1): (30.0, 30.0)}  # fmt: skip
    groups = make_groups([_run(loss, seed) for loss, seed in values])
    mx = loss_matrix(_tidy(values), groups)
    rm = groups[1].label
    assert mx.value(rm, "msp", "fpr95_delta") == pytest.approx(-2.5)
    assert mx.value(rm, "msp", "fpr95_significant") == 0.0
    # one seed: a change, but no interval and nothing marked
    one = {k: v for k, v in values.items() if k[1] == 0}
    g1 = make_groups([_run(loss, seed) for loss, seed in one])
    m1 = loss_matrix(_tidy(one), g1)
    assert m1.value(g1[1].label, "msp", "fpr95_delta") == pytest.approx(5.0)
    assert np.isnan(m1.value(g1[1].label, "msp", "fpr95_delta_lo"))
    assert "*" not in matrix_tables(m1)[2].rows[0][1].text


def _failure(aurc: dict[tuple[str, int], float], groups: list[Group]) -> pd.DataFrame:
    """failure.csv rows as report.confidence.load tags them: (loss, seed) -> MSP's AURC on the
    ID test set (AUGRC = AURC / 2), plus a shifted-mix row the matrix must ignore."""
    label = {g.loss: g.label for g in groups}
    rows = []
    for (loss, seed), value in aurc.items():
        for dataset, v in (("fashion-mnist", value), ("fashion-mnist-shifted-mix", 99.0)):
            rows.append({"run": f"/r/{loss}{seed}", "group": label[loss], "detector": "msp",
                         "dataset": dataset, "aurc": v, "augrc": v / 2})  # fmt: skip
    return pd.DataFrame(rows)


def test_failure_detection_joins_the_matrix_with_holm_and_lower_is_better() -> None:
    values = {("ce", s): (40.0, 60.0) for s in range(3)} | {
        ("t2fnorm", s): (30.0, 50.0) for s in range(3)}  # fmt: skip
    aurc = {("ce", 0): 5.0, ("ce", 1): 6.0, ("ce", 2): 5.5,
            ("t2fnorm", 0): 7.0, ("t2fnorm", 1): 8.5, ("t2fnorm", 2): 7.6}  # fmt: skip
    groups = make_groups([_run(loss, seed) for loss, seed in values])
    mx = loss_matrix(_tidy(values), groups, failure=_failure(aurc, groups))
    ce, t2 = (g.label for g in groups)
    assert mx.failure_metrics == ("aurc", "augrc")
    assert mx.value(ce, "msp", "aurc") == pytest.approx(5.5)  # the mix's 99 is not read
    assert mx.value(t2, "msp", "aurc_delta") == pytest.approx(np.mean([2.0, 2.5, 2.1]))
    assert mx.value(t2, "msp", "augrc_delta") == pytest.approx(np.mean([1.0, 1.25, 1.05]))
    lo, hi = mx.value(t2, "msp", "aurc_lo"), mx.value(t2, "msp", "aurc_hi")
    assert lo < mx.value(t2, "msp", "aurc") < hi  # an interval over seeds, as the OOD cells
    assert mx.value(t2, "msp", "aurc_significant") == 1.0  # one test in the family: Holm = p
    assert mx.value(t2, "msp", "aurc_p_holm") == pytest.approx(mx.value(t2, "msp", "aurc_p"))
    assert set(mx.frame["track"]) == {"all"}  # the OOD metrics' track is unchanged
    titles = [t.title for t in matrix_tables(mx)]
    assert titles[4:8] == ["AURC ↓: loss × detector", "AUGRC ↓: loss × detector",
                           f"ΔAURC vs {ce}", f"ΔAUGRC vs {ce}"]  # fmt: skip
    change = matrix_tables(mx)[6]  # AURC went up: worse, in red
    assert change.rows[0][1].text == "+2.20* ✗" and change.rows[0][1].tone == "bad"
    assert "failure detection on the ID test set (track failure)" in change.notes[0]
    # no failure rows (runs scored before issue 24): the matrix has the OOD metrics only
    plain = loss_matrix(_tidy(values), groups, failure=pd.DataFrame())
    assert plain.failure_metrics == () and len(matrix_tables(plain)) == len(titles) - 4


def test_the_ce_logitnorm_pair_alone_keeps_its_old_report() -> None:
    pair = [Group("CE", "ce", "m", "d"), Group("LogitNorm", "logitnorm", "m", "d")]
    assert not wanted(pair)
    assert wanted([*pair, Group("T2FNorm", "t2fnorm", "m", "d")])


def test_bench_losses_refuses_bad_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), "--losses", "ce,t2fnrom", *BENCH]) == 2
    assert "did you mean 't2fnorm'" in capsys.readouterr().err and not out.exists()
    assert main(["bench", "--out", str(out), "--losses", "ce,ce", *BENCH]) == 2
    assert "duplicates" in capsys.readouterr().err
