"""`oodbench report` on fabricated run dirs: golden files, reference join, plots, refusals, CLI.

Regenerate the golden files after an intended output change with
``OODBENCH_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_report.py`` and review the diff.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report_fixtures import BASE, OOD_OFFSET, OODS, make_pair, make_run

from oodbench.cli import main
from oodbench.errors import UserError
from oodbench.report import build, render
from oodbench.report.formats import to_markdown

GOLDEN = Path(__file__).parent / "golden"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_golden(name: str, text: str) -> None:
    """``text`` against the golden file, without the machine-specific "How this was produced"
    section (the versions and commit of whoever runs the test; tests/test_provenance.py)."""
    text = text.split("\n## How this was produced")[0]
    path = GOLDEN / name
    if os.environ.get("OODBENCH_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with OODBENCH_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    monkeypatch.chdir(tmp_path)  # relative run paths keep golden files machine-independent
    return [Path(p).relative_to(tmp_path) for p in make_pair(tmp_path / "runs")]


def expected_average(loss: str, det: str, metric: int) -> float:
    """The Average the fixture implies, computed here independently of the report code."""
    sign = (1.0, -0.25, -0.1)[metric]
    return float(np.mean([BASE[(loss, det)][metric] + sign * OOD_OFFSET[o] for o in OODS]))


def test_markdown_golden(pair: list[Path]) -> None:
    text = render(pair, "markdown")
    check_golden("report_pair.md", text)
    ce_fpr, ln_fpr = expected_average("ce", "msp", 0), expected_average("logitnorm", "msp", 0)
    row = next(line for line in text.splitlines() if line.startswith("| msp | 6"))
    assert f"{ce_fpr:.2f}" in row and f"**{ln_fpr:.2f}**" in row  # best (lower) FPR95 in bold
    assert f"{ln_fpr - ce_fpr:+.2f} ✓" in text  # the delta, marked better
    assert "ID is the positive class" in text and "Protocol: paper" in text


def test_csv_golden(pair: list[Path]) -> None:
    text = render(pair, "csv")
    check_golden("report_pair.csv", text)
    frame = pd.read_csv(io.StringIO(text))
    assert len(frame) == 2 * 2 * len(OODS)  # runs x detectors x OOD sets, no derived rows
    row = frame[
        (frame.run == "runs/ce") & (frame.detector == "energy") & (frame.ood_dataset == "gaussian")
    ]
    assert row["fpr95"].item() == pytest.approx(BASE[("ce", "energy")][0] + OOD_OFFSET["gaussian"])
    assert row["aupr"].item() == row["aupr_in"].item()  # id-positive: AUPR is AUPR-In


def test_json_is_machine_readable(pair: list[Path]) -> None:
    doc = json.loads(render(pair, "json"))
    assert [g["label"] for g in doc["groups"]] == ["CE", "LogitNorm τ=0.04"]
    assert doc["convention"] == "id-positive"
    avg = [c for c in doc["cells"] if c["ood_dataset"] == "Average" and c["detector"] == "msp"]
    assert {c["group"]: c["fpr95"] for c in avg}["CE"] == pytest.approx(
        expected_average("ce", "msp", 0)
    )


def test_out_writes_file_and_relative_plot_links(pair: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "site" / "report.md"
    text = render(pair, "markdown", out=out, plots=tmp_path / "site" / "plots")
    assert out.read_text(encoding="utf-8") == text
    assert "](plots/scores_msp.png)" in text and "](plots/reliability.png)" in text
    report = build(pair)
    report.plots = [("ROC", tmp_path / "pngs" / "roc_msp.png")]
    assert "](../pngs/roc_msp.png)" in to_markdown(report, tmp_path / "docs")


def test_plots_are_valid_pngs(pair: list[Path], tmp_path: Path) -> None:
    render(pair, "csv", plots=tmp_path / "plots")
    names = {"scores_msp.png", "roc_msp.png", "logit_norm.png", "reliability.png"}
    assert {p.name for p in (tmp_path / "plots").iterdir()} == names
    for name in names:
        data = (tmp_path / "plots" / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, name


def test_mixed_conventions_refused(tmp_path: Path) -> None:
    ce = make_run(tmp_path, "ce", "ce", convention="id-positive")
    ln = make_run(tmp_path, "ln", "logitnorm", convention="ood-positive")
    with pytest.raises(UserError, match="mix protocols/conventions") as err:
        render([ce, ln], "markdown")
    assert str(ce) in str(err.value) and "ood-positive" in str(err.value)
    text = render([ce, ln], "markdown", convention="id-positive")  # filtered: only CE left
    assert "1 run(s)" in text


def test_mixed_protocols_refused(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, "a", protocol="paper"), make_run(tmp_path, "b", protocol="full")]
    with pytest.raises(UserError, match="full/id-positive"):
        build(runs)


def test_seeds_grouped_with_mean_and_std(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for seed, jitter in ((0, 0.0), (1, 2.0)):
        for loss in ("ce", "logitnorm"):
            make_run(
                tmp_path / "runs" / "bench" / f"seed{seed}", loss, loss, seed=seed, jitter=jitter
            )
    monkeypatch.chdir(tmp_path)
    report = build([])  # no RUN_DIR: every scored run under ./runs, three levels deep
    assert [g.n for g in report.groups] == [2, 2]
    values = [BASE[("ce", "msp")][0] + OOD_OFFSET["gaussian"] + j for j in (0.0, 2.0)]
    cell = report.cells.query("group == 'CE' and detector == 'msp' and ood_dataset == 'gaussian'")
    assert cell["fpr95"].item() == pytest.approx(np.mean(values))
    assert cell["fpr95_std"].item() == pytest.approx(np.std(values, ddof=1))
    assert cell["std_over"].item() == "seeds"


def test_reference_join_matching_setting(tmp_path: Path) -> None:
    run = make_run(tmp_path, "wrn", "ce")
    cfg = {"dataset": "cifar10", "model": "wrn40_2", "loss": "ce", "tau": 0.04, "seed": 0}
    (run / "config.json").write_text(json.dumps(cfg))
    text = render([run], "markdown")
    assert "CE paper FPR95" in text
    msp = next(line for line in text.splitlines() if line.startswith("| msp |"))
    # Energy-OOD README, CIFAR-10 WRN-40-2 MSP average: FPR95 only; its README shows no AUROC
    assert "51.04" in msp and "90.90" not in msp
    assert "wetliu/energy_ood" in text


def test_reference_file_adds_and_overrides(tmp_path: Path) -> None:
    run = make_run(tmp_path, "ce", "ce")
    extra = tmp_path / "ref.csv"
    pd.DataFrame(
        [
            {"source": "mine", "id_dataset": "fashion-mnist", "model": "small_cnn", "loss": "ce",
             "detector": "msp", "ood_dataset": "gaussian", "fpr95": 12.5, "auroc": 97.0,
             "aupr": "", "note": "my earlier run"},
            {"source": "energy-ood", "id_dataset": "cifar10", "model": "WRN-40-2", "loss": "ce",
             "detector": "msp", "ood_dataset": "average", "fpr95": 50.0, "auroc": 91.0,
             "aupr": 98.0, "note": "override"},
        ]
    ).to_csv(extra, index=False)  # fmt: skip
    frame = pd.read_csv(io.StringIO(render([run], "csv", reference=extra)))
    hit = frame[(frame.detector == "msp") & (frame.ood_dataset == "gaussian")]
    assert hit["ref_fpr95"].item() == 12.5 and hit["ref_source"].item() == "mine"
    from oodbench.report.reference import load_reference

    ref = load_reference(extra)
    energy = ref[
        (ref.source == "energy-ood") & (ref.detector == "msp") & (ref.id_dataset == "cifar10")
    ]
    assert energy["fpr95"].tolist() == [50.0]


@pytest.mark.parametrize(
    "content, message",
    [
        ("source,loss\nx,ce\n", "lacks columns"),
        ("source,id_dataset,model,loss,detector,ood_dataset,fpr95,auroc,aupr,note\n"
         "s,c,m,ce,msp,a,abc,,,n\n", "not a number"),
        ("source,id_dataset,model,loss,detector,ood_dataset,fpr95,auroc,aupr,note\n"
         ",c,m,ce,msp,a,1,,,\n", "source and a note"),
        ("source,id_dataset,model,loss,detector,ood_dataset,fpr95,auroc,aupr,note\n"
         "s,c,m,ce,msp,a,140,,,n\n", "percentages"),
    ],
)  # fmt: skip
def test_bad_reference_file_is_user_error(tmp_path: Path, content: str, message: str) -> None:
    run = make_run(tmp_path, "ce", "ce")
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    with pytest.raises(UserError, match=message):
        render([run], "csv", reference=bad)


def test_shipped_reference_rows_all_cite_a_source() -> None:
    from oodbench.report.reference import load_reference

    ref = load_reference()
    assert (ref["source"] != "").all() and (ref["note"].str.len() > 40).all()
    claim = ref[ref.source == "logitnorm-abstract"]
    assert claim["fpr95"].tolist() == [-42.30] and claim["kind"].tolist() == ["delta"]


def test_filters_and_nested_config(tmp_path: Path) -> None:
    ce = make_run(tmp_path, "ce", "ce", nested_config=True)
    report = build([ce], detectors=["energy"], oods=["gaussian", "mnist-5k"])
    assert report.detectors == ["energy"] and report.groups[0].label == "CE"
    assert set(report.tidy["ood_dataset"]) == {"gaussian", "mnist-5k"}
    with pytest.raises(UserError, match="did you mean 'energy'"):
        build([ce], detectors=["enrgy"])


def test_cli_exact_design_card_command(pair: list[Path], capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# OOD detection report") and "LogitNorm τ=0.04" in out


def test_cli_unknown_format_exits_2(pair: list[Path], capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--format", "xml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown --format 'xml'") and "Traceback" not in err


def test_cli_missing_runs_is_user_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--runs-dir", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_rich_and_out(pair: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", *map(str, pair), "--detector", "msp"]) == 0
    assert "Average over OOD sets" in capsys.readouterr().out
    assert main(["report", *map(str, pair), "-f", "csv", "--out", "r/out.csv"]) == 0
    assert (tmp_path / "r" / "out.csv").read_text().startswith("run,label,loss")
