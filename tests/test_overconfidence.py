"""The overconfidence track of ``score``: failure.csv, shift.csv and fsood.csv (issue 24).

The covariate-shifted sets come from ``oodbench.data.shifted_sets``; here two fake ones (the
ID test set darkened and inverted, registered for the test only) stand in for them, so the test
does not depend on how the real corruptions are built.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _cli import DETECTORS, OOD, SCORE

from oodbench.cli import main
from oodbench.config import SHIFT_SIZE
from oodbench.data import DATASETS, DatasetSpec
from oodbench.data import load as load_set
from oodbench.scoring import confidence, rowfiles

FAKE = {"fake-darken-2": lambda x: x // 2, "fake-invert-5": lambda x: 255 - x}


def _spec(name: str) -> DatasetSpec:
    def loader(request):  # type: ignore[no-untyped-def]
        clean = load_set("fashion-mnist", "test")
        return replace(clean, images=FAKE[name](clean.images), name=name)

    return DatasetSpec(name, "synthetic", "1x28x28", 10, "test fake", ("test",), loader,
                       lambda root: True)  # fmt: skip


@pytest.fixture
def fake_shift(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for name in FAKE:
        monkeypatch.setitem(DATASETS._items, name, _spec(name))
    monkeypatch.setattr(confidence, "shift_names", lambda id_name, size: list(FAKE))
    return list(FAKE)


@pytest.mark.slow  # tens of seconds: CI runs it in the slow pass
def test_score_and_report_the_overconfidence_track(
    run: Path, fake_shift: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OODBENCH_N_BOOT", "50")  # rows scored now draw 50 resamples
    dets = [a for d in DETECTORS for a in ("-d", d)]
    oods = [a for o in OOD for a in ("--ood", o)]
    assert main(["score", str(run), *dets, *oods, *SCORE]) == 0
    shift = rowfiles.read_rows(run / rowfiles.SHIFT_FILE, rowfiles.SHIFT_COLUMNS)
    assert list(shift["dataset"]) == ["fake-darken-2", "fake-invert-5", "fashion-mnist"]
    clean = shift.set_index("dataset").loc["fashion-mnist"]
    assert clean["corruption"] == "none" and clean["severity"] == 0
    inverted = shift.set_index("dataset").loc["fake-invert-5"]
    assert (inverted["corruption"], inverted["severity"]) == ("invert", 5)  # parsed from name
    summary = pd.read_json(run / "summary.json", typ="series")
    assert clean["ece"] == pytest.approx(summary["ece"])
    assert clean["accuracy"] == pytest.approx(summary["id_accuracy"])
    assert clean["brier"] > 0 and clean["nll"] > 0 and np.isfinite(clean["ece_ts"])

    failure = rowfiles.read_rows(run / rowfiles.FAILURE_FILE, rowfiles.FAILURE_COLUMNS)
    mix = "fashion-mnist-shifted-mix"
    assert set(zip(failure["detector"], failure["dataset"], strict=True)) == {
        (d, s) for d in DETECTORS for s in ("fashion-mnist", mix)
    }
    msp = failure.set_index(["detector", "dataset"]).loc[("msp", "fashion-mnist")]
    assert msp["aurc_lo"] <= msp["aurc"] <= msp["aurc_hi"]
    assert msp["n_boot"] == 100  # scored_run's row (the suite's OODBENCH_N_BOOT), kept
    assert msp["aurc"] == pytest.approx(clean["msp_aurc"])  # the detector and shift.csv agree
    mixed = failure.set_index(["detector", "dataset"]).loc[("msp", mix)]
    # scored here, on the mix: one shifted copy of each of the sets' 2,000 sampled test images
    assert mixed["n_boot"] == 50 and mixed["n"] == SHIFT_SIZE == 2000
    assert msp["n"] == 10_000 and msp["n_wrong"] == round(10_000 * (1 - clean["accuracy"] / 100))

    fsood = pd.read_csv(run / rowfiles.FSOOD_FILE)
    assert len(fsood) == len(DETECTORS) * len(OOD)
    assert set(fsood["n_id"]) == {2 * SHIFT_SIZE}  # the sampled test images and their copies
    # resuming writes nothing new; --no-shift leaves the shifted tables alone
    before = {f: (run / f).read_text() for f in (rowfiles.FAILURE_FILE, rowfiles.FSOOD_FILE)}
    assert main(["score", str(run), *dets, *oods, *SCORE]) == 0
    assert before == {f: (run / f).read_text() for f in before}
    _check_report(run, tmp_path)


def test_mix_takes_image_i_from_set_i_mod_k() -> None:
    base = load_set("fashion-mnist", "test").subset(slice(0, 6))
    sets = [replace(base, images=torch.full_like(base.images, v), name=f"s{v}") for v in (1, 2)]
    mix = confidence.Mix(base, 2)
    for j, s in enumerate(sets):
        mix.take(j, s)
    out = mix.imageset()
    assert out.images[:, 0, 0, 0].tolist() == [1, 2, 1, 2, 1, 2]
    assert out.name == "fashion-mnist-shifted-mix" and torch.equal(out.labels, base.labels)


def _as_loss(src: Path, dst: Path, loss: str) -> Path:
    """A copy of a scored run that says it was trained with ``loss`` (for a two-loss report)."""
    import json
    import shutil

    shutil.copytree(src, dst)
    for name in ("config.json", "summary.json"):
        doc = json.loads((dst / name).read_text())
        doc["loss"] = loss
        (dst / name).write_text(json.dumps(doc))
    return dst


def _check_report(run: Path, tmp_path: Path) -> None:
    """The report shows the overconfidence track in every format (two losses: the matrix)."""
    import json

    from oodbench.report import render

    other = _as_loss(run, tmp_path / "runs" / "t2f", "t2fnorm")
    dirs = [run, other]
    md = render(dirs, "markdown", out=tmp_path / "r.md", plots=tmp_path / "plots")
    for heading in ("## Overconfidence", "## Failure detection", "## Calibration",
                    "## Covariate shift", "## Full-spectrum OOD"):  # fmt: skip
        assert heading in md, heading
    assert "Failure (ID): AURC ↓" in md and "Δ T2FNorm vs CE" in md
    assert (tmp_path / "plots" / "risk_coverage_msp.png").stat().st_size > 1000
    # failure detection in the loss x detector matrix: tables, heatmap, one-seed note
    assert "AURC ↓: loss × detector" in md and "ΔAUGRC vs CE" in md
    assert (tmp_path / "plots" / "failure_heatmap.png").stat().st_size > 5000
    from oodbench.report.plots import FAILURE_HEATMAP

    assert [s for _, s, _ in FAILURE_HEATMAP] == [-1.0, -1.0]  # lower AURC/AUGRC is greener
    assert "no paired test is possible" in md
    doc = json.loads(render(dirs, "json"))
    over = pd.DataFrame(doc["overconfidence"])
    ece = over[(over["measure"] == "ece")].set_index("group")["value"]
    assert ece["CE"] == pytest.approx(ece["T2FNorm"])  # the same run twice
    assert over.loc[over["group"] == "T2FNorm", "delta"].dropna().abs().max() < 1e-9
    assert {"failure", "shift", "fsood"} <= set(doc)
    render(dirs, "csv", out=tmp_path / "far.csv")
    failure = pd.read_csv(tmp_path / "far.failure.csv")
    matrix = pd.read_csv(tmp_path / "far.matrix.csv").set_index(["loss", "detector"])
    assert matrix.loc[("ce", "msp"), "aurc"] == pytest.approx(
        failure.query("loss == 'ce' and detector == 'msp' and dataset == 'fashion-mnist'")
        ["aurc"].iloc[0], abs=1e-4)  # fmt: skip
    assert matrix.loc[("t2fnorm", "msp"), "aurc_delta"] == pytest.approx(0.0, abs=1e-9)
    assert {"aurc_p_holm", "augrc_q_bh", "augrc_significant"} <= set(matrix.columns)
    assert set(failure["detector"]) == set(DETECTORS) and len(failure) == 2 * 2 * len(DETECTORS)
    assert len(pd.read_csv(tmp_path / "far.overconfidence.csv")) > 10
    _check_results_section(tmp_path)
    html = render(dirs, "html")
    assert "Overconfidence, per loss" in html
    text = render(dirs, "rich", out=tmp_path / "r.txt")
    assert "Covariate shift by severity" in text


def _check_results_section(folder: Path) -> None:
    """scripts/overconfidence_tables.py fills docs/results.md's block from the report CSVs."""
    import importlib.util

    path = Path(__file__).parents[1] / "scripts" / "overconfidence_tables.py"
    spec = importlib.util.spec_from_file_location("overconfidence_tables", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    page = folder / "results.md"
    page.write_text(f"before\n{script.BEGIN}\nold\n{script.END}\nafter\n")
    script.main(folder, page)
    text = page.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
    assert "| Failure (ID): AURC ↓ |" in text and "| Severity |" in text


def _measures(diffs: dict[str, list[float]]) -> tuple[pd.DataFrame, list]:
    """A measures() table for CE and LogitNorm over len(diffs[...]) seeds: CE at 10 for every
    measure, LogitNorm at 10 + diff; and the two report groups."""
    from oodbench.report.load import Run
    from oodbench.report.tables import make_groups

    seeds = range(len(next(iter(diffs.values()))))
    runs = [Run(Path(f"/r/{loss}{s}"), f"{loss}{s}", loss, None, {}, "m", "fashion-mnist", s, {})
            for loss in ("ce", "logitnorm") for s in seeds]  # fmt: skip
    rows = [{"run": str(r.path), "seed": r.seed}
            | {m: 10.0 + (d[r.seed] if r.loss == "logitnorm" else 0.0) for m, d in diffs.items()}
            for r in runs]  # fmt: skip
    return pd.DataFrame(rows), make_groups(runs)


def test_overconfidence_changes_are_holm_corrected_over_the_loss_column() -> None:
    from scipy.stats import ttest_1samp

    from oodbench.report.confidence import overconfidence_frame, overconfidence_table

    diffs = {"ece": [1.0, 1.1, 0.9], "accuracy": [2.0, 3.0, 1.8], "nll": [0.1, -0.1, 0.05],
             "brier": [0.5, -0.4, 0.2]}  # fmt: skip
    table, groups = _measures(diffs)
    frame = overconfidence_frame(table, groups, "msp")
    ln = frame[frame["group"] == "LogitNorm"].set_index("measure")
    raw = {m: ttest_1samp(d, 0.0).pvalue for m, d in diffs.items()}
    assert ln["delta_p"].to_dict() == pytest.approx(raw)
    order = sorted(raw, key=raw.get)  # Holm by hand: (k - i) p_(i), running maximum, at most 1
    holm, top = {}, 0.0
    for i, m in enumerate(order):
        top = max(top, min(1.0, (len(order) - i) * raw[m]))
        holm[m] = top
    assert ln["delta_p_holm"].to_dict() == pytest.approx(holm)
    assert raw["accuracy"] < 0.05 < holm["accuracy"]  # the case correction is for
    assert ln.loc["ece", "significant"] and not ln.loc["accuracy", "significant"]
    assert set(ln["family"]) == {"LogitNorm vs CE: every measure of the Overconfidence table "
                                 "(msp)"}  # fmt: skip
    spec = overconfidence_table(frame, groups, "msp")
    cells = {row[0].text: row[3] for row in spec.rows}
    assert cells["ID ECE ↓"].text.endswith("*") and cells["ID ECE ↓"].tone == "bad"
    acc = cells["ID accuracy ↑"]  # its interval excludes 0, yet Holm says not significant
    assert "*" not in acc.text and acc.tone is None and "[+" in acc.text
    assert any("Holm-adjusted" in n and "(4 for LogitNorm)" in n for n in spec.notes)


def test_one_seed_says_no_paired_test_instead_of_stars() -> None:
    from oodbench.report.confidence import overconfidence_frame, overconfidence_table

    table, groups = _measures({"ece": [5.0], "accuracy": [-3.0]})
    frame = overconfidence_frame(table, groups, "msp")
    assert frame["delta_p"].isna().all() and not frame["significant"].any()
    spec = overconfidence_table(frame, groups, "msp")
    assert all("*" not in row[3].text for row in spec.rows)
    assert any("no paired test is possible" in n for n in spec.notes)
