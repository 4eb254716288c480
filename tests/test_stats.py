"""Corrected significance (issue 23): raw p, Holm p and BH q within a declared family, and
coinciding detectors counted once; checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oodbench.report.families import count_significant, family_tests, settings_of
from oodbench.report.stats import adjust, coinciding, paired_p, same_ranking


def test_paired_p_is_the_t_test_behind_the_interval() -> None:
    # d = (1, 2, 3): mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641, df 2 -> p = 0.07418
    assert paired_p([1.0, 2.0, 3.0]) == pytest.approx(0.074180, abs=1e-6)
    assert np.isnan(paired_p([1.0]))
    assert paired_p([2.0, 2.0]) == 0.0 and paired_p([0.0, 0.0]) == 1.0


def test_holm_and_bh_match_a_hand_computed_family() -> None:
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    holm, bh = adjust(p)
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, then running max
    assert holm[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: p * 4 / rank (0.005:1, 0.01:2, 0.03:3, 0.04:4), then running min from the top
    assert bh[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert np.isnan(holm[4]) and np.isnan(bh[4])  # no p: not in the family


def _per_run() -> pd.DataFrame:
    """CE and LN, 3 seeds, detectors a, b (b = a on LN), c[tuned] and c (untuned)."""
    rows = []
    for seed in range(3):
        for det, ce, ln in (("a", 50, 40 - seed), ("b", 51, 40 - seed), ("c", 50, 50 + seed),
                            ("c[tuned]", 50, 30 + 3 * seed)):  # fmt: skip
            rows.append({"group": "CE", "loss": "ce", "seed": seed, "detector": det,
                         "fpr95": float(ce + seed)})  # fmt: skip
            rows.append({"group": "LN", "loss": "logitnorm", "seed": seed, "detector": det,
                         "fpr95": float(ln)})  # fmt: skip
    return pd.DataFrame(rows)


def test_families_are_one_loss_one_setting_and_carry_their_columns() -> None:
    assert settings_of(["a", "c", "c[tuned]"]) == {
        "a": ["tuned", "defaults"], "c": ["defaults"], "c[tuned]": ["tuned"]}  # fmt: skip
    frame = family_tests(_per_run(), ["CE", "LN"], "CE", ("fpr95",), "far",
                         {"LN": {"a": 0, "b": 0}})  # fmt: skip
    ln = frame[frame["group"] == "LN"].set_index(["setting", "detector"])
    assert set(ln.index) == {("tuned", "a"), ("tuned", "b"), ("tuned", "c[tuned]"),
                             ("defaults", "a"), ("defaults", "b"), ("defaults", "c")}  # fmt: skip
    # a: diffs (-10, -12, -14), b: (-11, -13, -15), c[tuned]: (-20, -18, -16)
    p = {d: paired_p(v) for d, v in (("a", [-10, -12, -14]), ("b", [-11, -13, -15]),
                                     ("c[tuned]", [-20, -18, -16]), ("c", [0, 0, 0]))}  # fmt: skip
    holm, bh = adjust([p["a"], p["b"], p["c[tuned]"]])
    assert ln.loc[("tuned", "a"), "fpr95_p"] == pytest.approx(p["a"])
    assert list(ln.loc["tuned", "fpr95_p_holm"]) == pytest.approx(list(holm))
    assert list(ln.loc["tuned", "fpr95_q_bh"]) == pytest.approx(list(bh))
    # the defaults family holds a, b and c (p = 1): a's Holm p differs from the tuned one
    d_holm, _ = adjust([p["a"], p["b"], p["c"]])
    assert ln.loc[("defaults", "a"), "fpr95_p_holm"] == pytest.approx(d_holm[0])
    assert ln.loc[("tuned", "a"), "fpr95_significant"] == (holm[0] < 0.05)
    assert ln.loc[("tuned", "b"), "coincides_with"] == "a"
    assert {"track", "setting", "group"} <= set(frame.columns) and set(frame["track"]) == {"far"}
    assert frame.loc[frame["group"] == "CE", "fpr95_p"].isna().all()  # the baseline


def test_coinciding_detectors_are_found_and_counted_once() -> None:
    rows = pd.DataFrame({"run": ["r1", "r1", "r2", "r2"] * 3, "ood_dataset": ["x", "y"] * 6,
                         "detector": ["react"] * 4 + ["vra"] * 4 + ["msp"] * 4,
                         "fpr95": [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 5.0]})  # fmt: skip
    cluster = coinciding(rows, ["run", "ood_dataset"], ["fpr95"])
    assert cluster["react"] == cluster["vra"] and "msp" not in cluster
    part = pd.DataFrame({"detector": ["react", "vra", "msp"], "coincides_with": ["", "react", ""],
                         "fpr95_significant": [True, True, False]})  # fmt: skip
    assert count_significant(part, "fpr95") == (1, 2)
    assert same_ranking([0.1, 0.5, 0.3], [1.0, 9.0, 2.0])
    assert not same_ranking([0.1, 0.5, 0.3], [1.0, 2.0, 9.0])


def test_cached_scores_confirm_or_split_a_metric_row_cluster(tmp_path) -> None:
    import torch

    from oodbench.report.families import confirm_by_scores
    from oodbench.runs import RunDir

    run = RunDir(tmp_path / "run")
    base = torch.tensor([0.1, 0.7, 0.3, 0.9])
    run.save_scores("react", "mnist", base, {})
    run.save_scores("vra", "mnist", base * 2 + 1, {})  # same ranking: the same test
    run.save_scores("ash", "mnist", base.flip(0), {})  # equal metric rows by chance only
    cluster = {"react": 0, "vra": 0, "ash": 0}
    assert confirm_by_scores(cluster, [str(run.path)]) == {"react": 0, "vra": 0}
    assert confirm_by_scores({"react": 1, "ash": 1}, [str(run.path)]) == {}


def test_two_level_bootstrap_is_zero_for_one_model_and_widens_with_seed_spread() -> None:
    from oodbench.report.stats import two_level_interval

    rng = np.random.default_rng(0)
    id_s, ood_s = rng.normal(1, 1, 300), rng.normal(0, 1, 100)
    same = two_level_interval([(id_s, id_s, [(ood_s, ood_s)])] * 2, n_boot=100)
    assert same["auroc"] == (0.0, 0.0) and same["fpr95"] == (0.0, 0.0)  # paired by image

    def seed(shift: float) -> tuple:  # model B's OOD scores moved up: B separates worse
        return (id_s, id_s, [(ood_s, ood_s + shift)])

    # the image level alone: three copies of one seed
    images = two_level_interval([seed(0.5)] * 3, n_boot=200)
    spread = two_level_interval([seed(0.0), seed(0.5), seed(1.0)], n_boot=200)
    lo, hi = images["auroc"]
    assert 0 < lo < hi  # A - B: A separates better
    assert spread["auroc"][1] - spread["auroc"][0] > 2 * (hi - lo)  # seeds add their spread


def _rank_rows(n_seeds: int, n_sets: int) -> pd.DataFrame:
    """Detector d is 5 d points below d0, with noise that sometimes swaps neighbours."""
    rng = np.random.default_rng(1)
    rows = [{"group": g, "seed": s, "track": "far", "ood_dataset": f"o{o}", "detector": f"d{d}",
             "auroc": 90.0 - 5 * d + rng.normal(0, 3)}
            for g in ("CE", "LN") for s in range(n_seeds) for o in range(n_sets)
            for d in range(4)]  # fmt: skip
    return pd.DataFrame(rows)


def test_rank_tests_run_with_five_blocks_and_are_skipped_with_fewer(tmp_path) -> None:
    from oodbench.report import ranks

    tests = ranks.rank_tests(_rank_rows(2, 4), ["CE", "LN"])
    assert [t.name for t in tests] == ["CE", "LN", "all losses"]
    ce = tests[0]
    assert ce.blocks == 8 and list(ce.mean_ranks.index) == ["d0", "d1", "d2", "d3"]
    assert ce.mean_ranks.is_monotonic_increasing and ce.p < 0.01
    assert ce.posthoc.shape == (4, 4) and ce.posthoc.loc["d0", "d3"] < 0.05  # Conover-Holm
    assert ranks.separated(ce) >= 1 and len(tests[2].mean_ranks) == 8  # (loss, detector) pairs
    assert set(ranks.to_frame(tests)["test"]) == {"CE", "LN", "all losses"}
    assert ranks.cd_diagram(ce, tmp_path / "cd.png").stat().st_size > 0
    assert ranks.rank_tests(_rank_rows(1, 4), ["CE", "LN"]) == []  # 4 blocks: skipped
    assert "fewer than 5" in ranks.blocks_note(_rank_rows(1, 4))
