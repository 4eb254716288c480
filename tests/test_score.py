"""``score`` end to end on a real tiny run: rows, files, cache hits, resumability, bad input."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _cli import DETECTORS, OOD, VAL_SIZE

from oodbench import metrics, runs
from oodbench.cli import main
from oodbench.config import ScoreConfig
from oodbench.errors import UserError
from oodbench.scoring import rows as metrics_rows
from oodbench.scoring import run as scoring


def cfg_for(run: Path, **kw) -> ScoreConfig:
    return ScoreConfig(run_dir=str(run), ood=OOD, device="cpu", **kw)


def test_score_writes_rows_scores_and_summary_from_the_cache(run: Path) -> None:
    """The shared run was scored once (msp, energy): knn and maxlogit reuse its cached passes."""
    cached = {p.stem for p in (run / "cache").glob("*.safetensors")}
    result = scoring.score_run(cfg_for(run, detectors=("knn", "maxlogit")), quiet=True)
    table = result.rows
    assert result.run_dir == run
    assert sorted(zip(table.detector, table.ood_dataset, strict=True)) == sorted(
        (d, o) for d in ("knn", "maxlogit") for o in OOD
    )
    assert {"fashion-mnist-test", "fashion-mnist-val", *(f"{o}-test" for o in OOD)} <= cached
    assert set(result.cache_hits) == cached  # nothing extracted again
    assert {p.stem for p in (run / "cache").glob("*.safetensors")} == cached | {
        "fashion-mnist-train"  # knn's fit split, unless a bad knn call left it in the cache
    }
    saved = pd.read_csv(run / "metrics.csv")
    assert list(saved.columns) == runs.COLUMNS
    assert len(saved) == len(OOD) * (len(DETECTORS) + 2)
    assert saved[["fpr95", "auroc", "aupr_in", "aupr_out"]].stack().between(0, 100).all()
    assert (saved.n_id == 10000).all() and (saved.convention == "id-positive").all()
    for det in ("knn", "maxlogit", *DETECTORS):
        assert (run / "scores" / det / "fashion-mnist.safetensors").is_file()
        assert all((run / "scores" / det / f"{o}.safetensors").is_file() for o in OOD)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_val"] == VAL_SIZE and summary["temperature"] > 0
    assert 0 <= summary["ece_ts"] <= 100 and 0 <= summary["id_accuracy"] <= 100


def test_resumable_rows_are_kept_unless_overwrite(run: Path) -> None:
    cfg = cfg_for(run, detectors=("maxlogit",))
    scoring.score_run(cfg, quiet=True)
    path = run / "metrics.csv"
    table = pd.read_csv(path)
    mark = (table.detector == "maxlogit") & (table.ood_dataset == "gaussian")
    table.loc[mark, "auroc"] = -1.0  # a sentinel a recomputation would replace
    table.to_csv(path, index=False)
    assert len(scoring.score_run(cfg, quiet=True)) == 0
    assert (pd.read_csv(path).loc[mark, "auroc"] == -1.0).all()
    redone = scoring.score_run(cfg_for(run, detectors=("maxlogit",), overwrite=True), True)
    assert len(redone) == 2
    after = pd.read_csv(path)
    assert len(after) == len(table)  # replaced, not appended
    assert (after[(after.detector == "maxlogit")].auroc > 0).all()


def test_paper_protocol_and_ood_positive_rows(run: Path) -> None:
    cfg = cfg_for(run, detectors=("energy",), protocol="paper", positive="ood")
    table = scoring.score_run(cfg, quiet=True).rows
    assert (table.n_ood == 2000).all() and (table.protocol == "paper").all()
    assert table.fpr95_std.notna().all() and (table.auroc_std > 0).any()
    assert (table.convention == "ood-positive").all()
    full = pd.read_csv(run / "metrics.csv")
    full = full[(full.protocol == "full") & (full.detector == "energy")]
    assert full.fpr95_std.isna().all()


def test_paper_rows_are_the_mean_and_std_of_seeded_draws() -> None:
    g = torch.Generator().manual_seed(0)
    id_s, ood_s = torch.randn(500, generator=g) + 1, torch.randn(3000, generator=g)
    cfg = ScoreConfig(protocol="paper")
    row = metrics_rows.metric_row(id_s, ood_s, cfg)
    assert row == metrics_rows.metric_row(id_s, ood_s, cfg) and row["n_ood"] == 100  # |ID| / 5
    draws = []  # the protocol, recomputed here: 10 seeded draws of |ID| / 5 OOD samples
    for draw in range(cfg.paper_draws):
        pick = np.random.default_rng(cfg.paper_seed + draw).choice(3000, 100, replace=False)
        draws.append(metrics.ood_metrics(id_s, ood_s[torch.from_numpy(pick)]))
    for key in ("fpr95", "auroc", "aupr_in", "aupr_out"):
        values = [100 * d[key] for d in draws]
        assert row[key] == pytest.approx(np.mean(values))
        assert row[f"{key}_std"] == pytest.approx(np.std(values)) and row[f"{key}_std"] > 0
    full = metrics_rows.metric_row(id_s, ood_s, ScoreConfig())
    assert math.isnan(full["fpr95_std"]) and full["n_ood"] == 3000
    assert full["fpr95"] == pytest.approx(100 * metrics.fpr_at_tpr(id_s, ood_s, 0.95))


def test_row_writer_keeps_order_and_raises_a_failed_row(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    id_s, ood_s = torch.randn(300, generator=g) + 1, torch.randn(200, generator=g)
    cfg, path = ScoreConfig(), tmp_path / "metrics.csv"
    heads = [{"run": "r", "detector": f"d{i}", "ood_dataset": "o"} for i in range(4)]
    with metrics_rows.RowWriter(path) as writer:
        for head in heads:
            writer.submit(head, id_s, ood_s * (1 + int(head["detector"][1:])), cfg)
        rows = writer.rows()
    assert [r["detector"] for r in rows] == ["d0", "d1", "d2", "d3"]  # submission order
    assert rows[2] == {**heads[2], **metrics_rows.metric_row(id_s, 3 * ood_s, cfg, ("d2", "o",
                                                         "full", "id-positive"))}  # fmt: skip
    assert len(runs.read_metrics(path)) == 4  # each merged into metrics.csv
    bad = ood_s.clone()
    bad[0] = float("nan")
    with pytest.raises(UserError, match="NaN"), metrics_rows.RowWriter(path) as writer:
        writer.submit({**heads[0], "detector": "nan"}, id_s, bad, cfg)
        writer.rows()
    assert "nan" not in set(runs.read_metrics(path)["detector"])  # nothing half-written


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


def _merge_many(path: str, who: int) -> None:
    for i in range(25):
        row = {c: 0 for c in runs.COLUMNS}
        row.update(detector=f"d{who}", ood_dataset=f"o{i}", protocol="full", convention="id")
        runs.merge_metrics(Path(path), [row])


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
    assert len(table) == 50 and len(table.drop_duplicates(runs.KEY)) == 50
    assert not list(tmp_path.glob(".metrics.csv.*.tmp"))


def test_cli_as_typed_scores_the_newest_run(
    run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`oodbench score --detector energy` with RUN_DIR defaulting to the newest run."""
    monkeypatch.chdir(run.parent.parent)
    argv = ["score", "--runs-dir", run.parent.name, "--detector", "energy", "--ood",
            "gaussian", "--device", "cpu", "--overwrite", "-q"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "energy" in out and "gaussian" in out
