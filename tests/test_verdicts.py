"""The tuned-vs-untuned verdict table: paired changes, significance and flips, on synthetic runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from oodbench.errors import UserError
from oodbench.report import verdicts
from oodbench.runs import COLUMNS


def _run(folder: Path, seed: int, loss: str, rows: dict[str, float]) -> None:
    """A run dir whose metrics.csv has one AUROC per detector label on two OOD sets (the
    second 2 points lower, so the mean is the given value - 1)."""
    run = folder / f"seed{seed}" / loss
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"loss": loss, "seed": seed}))
    records = [
        {"detector": det, "ood_dataset": ood, "protocol": "paper", "convention": "id-positive",
         "auroc": auroc - shift, "fpr95": 50.0, "loss": loss, "seed": seed}
        for det, auroc in rows.items() for ood, shift in (("a", 0.0), ("b", 2.0))
    ]  # fmt: skip
    pd.DataFrame(records).reindex(columns=COLUMNS).to_csv(run / "metrics.csv", index=False)


def test_verdicts_flip_when_tuning_reverses_a_significant_change(tmp_path: Path) -> None:
    main, noise = tmp_path / "main", tmp_path / "noise"
    for seed, jitter in enumerate((0.0, 0.3, -0.2)):
        # defaults: LogitNorm ReAct 10 points worse; tuned on noise: 5 points better
        _run(main, seed, "ce", {"msp": 80, "react": 90 + jitter, "react[tuned]": 91})
        _run(main, seed, "logitnorm", {"msp": 85, "react": 80, "react[tuned]": 91 + jitter})
        _run(noise, seed, "ce", {"react[tuned]": 88})
        _run(noise, seed, "logitnorm", {"react[tuned]": 93 + jitter})
    texts = (f"defaults=untuned:{main}", f"both=tuned:{main}", f"noise=tuned:{noise}")
    settings = [verdicts.parse_setting(t) for t in texts]
    frame = pd.concat([verdicts.setting_rows(s) for s in settings], ignore_index=True)
    # msp is not tunable: not in the table, but in the family Holm corrects over
    assert set(frame.loc[frame["tunable"], "detector"]) == {"react"}
    assert set(frame.loc[~frame["tunable"], "detector"]) == {"msp"}
    ce0 = frame.query("setting == 'defaults' and loss == 'ce' and seed == 0 and tunable")
    assert ce0["auroc"].item() == 89
    table = verdicts.verdict_table(frame, ["defaults", "both", "noise"]).set_index("detector")
    assert table.loc["react", "defaults"].endswith("worse")
    assert table.loc["react", "both"].endswith("n.s.")  # a mean change of +0.03
    assert table.loc["react", "noise"] == "+5.0 better"
    assert table.loc["react", "flips"] == "yes" and table.loc["react", "changes"] == "yes"
    text = verdicts.render(settings)
    assert "1 of 1 tunable detectors flip" in text
    pairs = verdicts.setting_pairs(frame, ["defaults", "noise"]).iloc[0]
    # defaults - noise: CE (89 + j) - 87, LogitNorm 79 - (92 + j): 3 cells of each loss
    assert pairs["comparison"] == "defaults - noise" and pairs["cells"] == 6
    assert pairs["higher"] == 3 and pairs["lower"] == 3
    assert pairs["mean AUROC change"] == pytest.approx((3 * 2 - 3 * 13) / 6)  # jitters cancel


def test_verdict_needs_an_interval_that_excludes_zero() -> None:
    assert verdicts.verdict([1.0, 1.1, 0.9]) == (pytest.approx(1.0), "better")
    assert verdicts.verdict([1.0, 1.1, 0.9], p_holm=0.06)[1] == "n.s."  # Holm decides
    assert verdicts.verdict([1.0, -1.2, 0.5])[1] == "n.s."
    assert verdicts.verdict([-2.0])[1] == "n.s."  # one seed: no interval, no verdict


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="NAME=tuned:DIR"):
        verdicts.parse_setting("noise:somewhere")
    with pytest.raises(UserError, match="no scored run"):
        verdicts.setting_rows(verdicts.parse_setting(f"x=tuned:{tmp_path}"))
    assert verdicts.main([str(tmp_path / "o.md"), "bad"]) == 2
    assert not (tmp_path / "o.md").exists()
