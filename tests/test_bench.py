"""bench: the stage plan, the tau choice, the time estimate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from oodbench.bench.runner import _Clock, plan
from oodbench.bench.tausweep import choose_tau
from oodbench.config import BenchConfig
from oodbench.errors import UserError


def test_single_seed_layout_is_ce_and_logitnorm() -> None:
    stages = plan(BenchConfig(out="x", epochs=3))
    assert [(s.kind, s.run_dir) for s in stages] == [
        ("train", Path("x/ce")), ("score", Path("x/ce")),
        ("train", Path("x/logitnorm")), ("score", Path("x/logitnorm")),
    ]  # fmt: skip
    ce, ln = stages[0].train, stages[2].train
    assert (ce.loss, ln.loss) == ("ce", "logitnorm")
    assert ce.epochs == ln.epochs == 3 and ce.seed == ln.seed == 0


def test_many_seeds_get_one_folder_each() -> None:
    stages = plan(BenchConfig(out="x", seeds=(0, 1, 2)))
    dirs = sorted({s.run_dir for s in stages})
    assert len(dirs) == 6 and Path("x/seed2/logitnorm") in dirs
    assert {s.train.seed for s in stages if s.run_dir.parent.name == "seed1"} == {1}


def test_tau_sweep_plans_one_run_per_tau() -> None:
    stages = plan(BenchConfig(out="x", tau_sweep=(0.01, 0.1)))
    trains = [s for s in stages if s.kind == "train"]
    assert [(s.run_dir.name, s.train.tau) for s in trains[1:]] == [
        ("logitnorm-t0.01", 0.01), ("logitnorm-t0.1", 0.1)
    ]  # fmt: skip


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seeds": ()},
        {"seeds": (1, 1)},
        {"tau_sweep": (0.0,)},
        {"preset": "nope"},
        {"resume": True, "overwrite": True},
        {"epochs": 0},
    ],  # fmt: skip
)
def test_bad_bench_config_is_a_user_error(kwargs: dict) -> None:
    with pytest.raises(UserError):
        BenchConfig(**kwargs)


def test_tau_choice_uses_validation_fpr95_among_accurate_runs() -> None:
    table = pd.DataFrame(
        {
            "loss": ["ce", "logitnorm", "logitnorm", "logitnorm"],
            "tau": [None, 0.01, 0.04, 1.0],
            "val_acc": [92.0, 89.0, 91.5, 91.9],  # 0.01 loses 3 points: not eligible
            "val_msp_fpr95": [50.0, 1.0, 10.0, 30.0],
        }
    )
    assert choose_tau(table) == 0.04
    table.loc[2, "val_acc"] = 80.0
    assert choose_tau(table) == 1.0
    table.loc[3, "val_acc"] = 80.0
    assert choose_tau(table) is None


def test_clock_estimates_time_left_from_units_done() -> None:
    now = [0.0]
    clock = _Clock(10.0, now=lambda: now[0])
    assert "estimating" in clock.status()
    now[0] = 30.0
    clock.done(2.0)
    assert "about 2:00 left" in clock.status()


def test_clock_ignores_skipped_stages() -> None:
    now = [0.0]
    clock = _Clock(10.0, now=lambda: now[0])
    clock.skip(4.0)  # a resumed bench found these done in no time
    now[0] = 60.0
    clock.done(2.0)
    assert "about 2:00 left" in clock.status()


def test_tau_sweep_table_shows_calibration_beside_ood(run: Path) -> None:
    """Issue 24: the sweep reports test ECE, raw and temperature-scaled, at every tau."""
    from oodbench.bench.tausweep import HEADERS, sweep_table
    from oodbench.runs import RunDir

    summary = RunDir(run).read_summary()
    RunDir(run).write_summary(summary | {"validation": {"msp": {"fpr95": 50.0}}})
    table = sweep_table([run])
    assert table.loc[0, "test_ece"] == pytest.approx(summary["ece"])
    assert table.loc[0, "test_ece_ts"] == pytest.approx(summary["ece_ts"])
    assert table.loc[0, "temperature"] == pytest.approx(summary["temperature"])
    assert {"test_ece", "test_ece_ts", "temperature"} <= set(HEADERS)
