"""Bootstrap intervals on every metric, paired intervals over seeds, significance in reports."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _cli import SCORE
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score
from test_report_fixtures import make_run

from oodbench import metrics
from oodbench.cli import main
from oodbench.report import build, render
from oodbench.runs import INTERVALS, read_metrics

NAMES = ("fpr95", "auroc", "aupr_in", "aupr_out")


@pytest.mark.parametrize("positive", ["id", "ood"])
def test_vectorised_resample_metrics_equal_scikit_learn(positive: str) -> None:
    """One explicit resample, as counts on the score grid, gives exactly the point metrics of
    the resampled arrays (ties included), so the interval is of the very numbers we report."""
    rng = np.random.default_rng(3)
    s_id, s_ood = rng.integers(0, 15, 300).astype(float) + 2, rng.integers(0, 15, 120) * 1.0
    id_slots, ood_slots, u = metrics._on_grid(s_id, s_ood)
    for _ in range(5):
        pick_id, pick_ood = rng.integers(0, 300, 300), rng.integers(0, 120, 60)
        h_id = np.bincount(id_slots[pick_id], minlength=u)[None].astype(float)
        h_ood = np.bincount(ood_slots[pick_ood], minlength=u)[None].astype(float)
        got = metrics._curve_metrics(h_id, h_ood, positive, 0.95)[:, 0]
        want = metrics.ood_metrics(s_id[pick_id], s_ood[pick_ood], positive)
        assert got == pytest.approx([want[k] for k in NAMES], abs=1e-12)
    labels = np.r_[np.ones(300), np.zeros(120)]
    assert metrics.auroc(s_id, s_ood) == pytest.approx(roc_auc_score(labels, np.r_[s_id, s_ood]))
    ap = average_precision_score(labels, np.r_[s_id, s_ood])
    assert metrics.aupr_in(s_id, s_ood) == pytest.approx(ap)


def test_interval_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    s_id, s_ood = rng.normal(1, 1, 800), rng.normal(0, 1, 400)
    seed = metrics.row_seed("msp", "gaussian", "full", "id-positive")
    a = metrics.bootstrap_intervals(s_id, s_ood, seed=seed, n_boot=300)
    assert a == metrics.bootstrap_intervals(s_id, s_ood, seed=seed, n_boot=300)
    assert a != metrics.bootstrap_intervals(s_id, s_ood, seed=seed + 1, n_boot=300)
    assert seed == metrics.row_seed("msp", "gaussian", "full", "id-positive")  # stable
    point = metrics.ood_metrics(s_id, s_ood)
    for k in NAMES:
        lo, hi = a[k]
        assert lo < point[k] < hi and hi - lo < 0.2, (k, lo, point[k], hi)
    # Fewer OOD samples per resample (the paper protocol's subsample) widen the interval.
    small = metrics.bootstrap_intervals(s_id, s_ood, seed=seed, n_boot=300, ood_size=80)
    assert small["auroc"][1] - small["auroc"][0] > 1.5 * (a["auroc"][1] - a["auroc"][0])


def test_coverage_of_the_true_auroc_on_200_trials() -> None:
    """ID ~ N(d, 1), OOD ~ N(0, 1): AUROC = Phi(d / sqrt 2). About 95% of the 200 seeded
    intervals must contain it (binomial sd at 95%: 1.5 points; the band is about 3 sd)."""
    start = time.perf_counter()
    d = 1.0
    truth = float(norm.cdf(d / math.sqrt(2)))
    hits = 0
    for trial in range(200):
        rng = np.random.default_rng(10_000 + trial)
        s_id, s_ood = rng.normal(d, 1, 120), rng.normal(0, 1, 80)
        lo, hi = metrics.bootstrap_intervals(s_id, s_ood, n_boot=300, seed=trial)["auroc"]
        hits += lo <= truth <= hi
    assert 0.90 <= hits / 200 <= 0.99, hits
    assert time.perf_counter() - start < 20  # 4 s on the busy shared 2-core dev box


def test_paired_interval_t_and_one_seed() -> None:
    assert metrics.paired_interval([1.5]) is None
    lo, hi = metrics.paired_interval([1.0, 2.0, 3.0])
    assert (lo + hi) / 2 == pytest.approx(2.0)
    assert hi - lo == pytest.approx(2 * 4.302652729911275 * 1.0 / math.sqrt(3))  # t_{.975,2}


@pytest.mark.parametrize("value", ["ten", "5", "-100"])
def test_a_bad_resample_count_fails_before_any_work(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    before = (run / "metrics.csv").read_bytes()
    monkeypatch.setenv("OODBENCH_N_BOOT", value)
    assert main(["score", str(run), "-d", "maxlogit", "--ood", "gaussian", *SCORE]) == 2
    err = capsys.readouterr().err.strip()
    assert "OODBENCH_N_BOOT" in err and repr(value) in err and len(err.splitlines()) == 1
    assert (run / "metrics.csv").read_bytes() == before  # no row was added


def test_010_rows_read_without_intervals() -> None:
    table = read_metrics(Path(__file__).parent / "fixtures" / "v010" / "metrics.csv")
    assert set(INTERVALS) <= set(table.columns) and table[INTERVALS].isna().all().all()
    assert table["n_boot"].isna().all()


def test_scored_rows_carry_intervals(scored_run: Path) -> None:
    rows = read_metrics(scored_run / "metrics.csv")
    assert (rows["n_boot"] == 100).all()  # the suite's OODBENCH_N_BOOT (tests/conftest.py)
    for v in NAMES:
        assert (rows[f"{v}_lo"] <= rows[v] + 1e-9).all() and (
            rows[v] <= rows[f"{v}_hi"] + 1e-9
        ).all()
        assert (rows[f"{v}_hi"] > rows[f"{v}_lo"]).any()


# ---------------------------------------------------------------- the report


def _seeded_pair(root: Path, shifts: dict[int, float], ce_jitter: float = 0.0) -> list[Path]:
    """CE and LogitNorm runs, one per seed; LogitNorm's rows move by ``shifts[seed]`` FPR95
    points from the fixture's values, every row gets a made-up interval of +-1."""
    paths = []
    for seed, shift in shifts.items():
        for loss in ("ce", "logitnorm"):
            jitter = ce_jitter * seed if loss == "ce" else shift
            path = make_run(root, f"s{seed}-{loss}", loss, seed=seed, jitter=jitter)
            table = pd.read_csv(path / "metrics.csv")
            for v in NAMES:
                table[f"{v}_lo"], table[f"{v}_hi"] = table[v] - 1, table[v] + 1
            table["n_boot"] = 1000
            table.to_csv(path / "metrics.csv", index=False)
            paths.append(path)
    return paths


def _delta_row(text: str, det: str = "msp") -> str:
    header = "| Detector | FPR95 CE |"
    table = text.split(header, 1)[1]
    return next(line for line in table.splitlines() if line.startswith(f"| {det} |"))


def test_one_seed_shows_bootstrap_intervals_and_no_paired_interval(tmp_path: Path) -> None:
    runs = _seeded_pair(tmp_path / "runs", {0: 0.0})
    text = render(runs, "markdown")
    assert "60.00 [59.00, 61.00]" in text  # CE msp Average: mean of the sets' bounds
    assert "[n/a]" in _delta_row(text) and "*" not in _delta_row(text)
    data = json.loads(render(runs, "json"))
    comp = data["comparison"][0]
    assert comp["n_pairs"] == 1 and comp["fpr95_significant"] is None
    cell = next(c for c in data["cells"] if c["ood_dataset"] == "gaussian")
    assert cell["ci_over"] == "bootstrap" and cell["fpr95_hi"] - cell["fpr95_lo"] == 2
    csv = pd.read_csv(__import__("io").StringIO(render(runs, "csv")))
    assert (csv["fpr95_hi"] - csv["fpr95_lo"]).round(6).eq(2).all() and (
        csv["n_boot"] == 1000
    ).all()


def test_paired_interval_marks_only_differences_that_exclude_zero(tmp_path: Path) -> None:
    # LogitNorm changes FPR95 by -3, -2.5, -3.5 points against CE's seed: significant.
    runs = _seeded_pair(tmp_path / "a", {0: -3.0, 1: -2.5, 2: -3.5})
    report = build(runs)
    comp = report.comparison.set_index("detector")
    lo, hi = comp.loc["msp", "fpr95_delta_lo"], comp.loc["msp", "fpr95_delta_hi"]
    assert lo < hi < 0 and comp.loc["msp", "fpr95_significant"] and comp.loc["msp", "n_pairs"] == 3
    diffs = [-31.0 + s for s in (-3.0, -2.5, -3.5)]  # LN - CE per seed, Average over the sets
    assert (lo, hi) == pytest.approx(metrics.paired_interval(diffs))
    text = render(runs, "markdown")
    assert f"[{lo:+.2f}, {hi:+.2f}]*" in _delta_row(text)
    # The same mean change with a seed that goes the other way: not significant, no star.
    runs = _seeded_pair(tmp_path / "b", {0: -20.0, 1: 10.0, 2: 1.0})
    comp = build(runs).comparison.set_index("detector")
    assert comp.loc["msp", "fpr95_delta_lo"] < 0 < comp.loc["msp", "fpr95_delta_hi"]
    assert comp.loc["msp", "fpr95_significant"] is False or not comp.loc["msp", "fpr95_significant"]
    assert "]*" not in _delta_row(render(runs, "markdown"))


def test_several_seeds_cells_show_the_t_interval_over_seeds(tmp_path: Path) -> None:
    runs = _seeded_pair(tmp_path / "runs", {0: 0.0, 1: 0.0}, ce_jitter=2.0)
    cells = build(runs).cells
    ce = cells[(cells["group"] == "CE") & (cells["detector"] == "msp")]
    row = ce[ce["ood_dataset"] == "gaussian"].iloc[0]
    assert row["ci_over"] == "seeds"
    assert (row["fpr95_lo"], row["fpr95_hi"]) == pytest.approx(
        metrics.paired_interval([50.0, 52.0])  # CE seeds 0 and 1: jitter 0 and 2
    )


def test_temperature_at_a_bound_is_shown_in_the_report(tmp_path: Path) -> None:
    runs = _seeded_pair(tmp_path / "runs", {0: 0.0})
    summary = json.loads((runs[0] / "summary.json").read_text())
    summary["temperature_warning"] = "temperature T = 100 is at the end of the search range"
    (runs[0] / "summary.json").write_text(json.dumps(summary))
    text = render(runs, "markdown")
    assert "⚠ Temperature at a bound of its search range in CE seed 0" in text
