"""Provenance: every run dir records code, versions, device, command and data checksums; a run
whose ID data changed since training is refused (or scored with a recorded warning)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from _cli import SCORE

from oodbench import provenance
from oodbench.cli import main
from oodbench.data.imageset import ImageSet


def test_training_records_provenance_and_data_checksums(trained_run: Path) -> None:
    config = json.loads((trained_run / "config.json").read_text())
    record = config["provenance"]
    assert set(record) >= {"oodbench", "git", "versions", "device", "command", "python"}
    assert set(record["versions"]) == {"torch", "torchvision", "timm", "numpy"}
    assert str(record["versions"]["torch"]).split("+")[0] == torch.__version__.split("+")[0]
    assert record["device"].startswith("CPU")
    assert record["command"].startswith("oodbench train --runs-dir ")  # conftest's command
    checksums = config["datasets"]
    assert set(checksums) == {"fashion-mnist:train", "fashion-mnist:test"}
    assert all(len(v) == 64 for v in checksums.values())


def test_scoring_records_every_set_it_read(scored_run: Path) -> None:
    summary = json.loads((scored_run / "summary.json").read_text())
    config = json.loads((scored_run / "config.json").read_text())
    read = summary["datasets"]
    assert {"fashion-mnist:train", "fashion-mnist:test", "gaussian:test", "mnist-5k:test"} <= set(
        read
    )
    # the same data as at training time, hashed the same way
    assert read["fashion-mnist:train"] == config["datasets"]["fashion-mnist:train"]
    assert summary["provenance"]["device"].startswith("CPU")
    assert summary["score_commands"] == [summary["provenance"]["command"]]
    assert summary["score_commands"][0].startswith("oodbench score ")
    assert "data_changed" not in summary


def _tamper(run: Path) -> None:
    path = run / "config.json"
    config = json.loads(path.read_text())
    config["datasets"]["fashion-mnist:train"] = "0" * 64
    path.write_text(json.dumps(config))


def test_score_refuses_changed_id_data(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _tamper(run)
    before = (run / "summary.json").read_text()
    assert main(["score", str(run), "-d", "msp", "--ood", "gaussian", *SCORE]) == 2
    err = capsys.readouterr().err
    assert "fashion-mnist:train is not the data the run was trained on" in err
    assert "--allow-data-change" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) <= 3  # one error, wrapped
    assert (run / "summary.json").read_text() == before  # nothing written


def test_allow_data_change_scores_and_records_it(run: Path) -> None:
    _tamper(run)
    argv = ["score", str(run), "-d", "msp", "--ood", "gaussian", "--allow-data-change", *SCORE]
    assert main(argv) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert any("fashion-mnist:train" in line for line in summary["data_changed"])


def test_checksum_is_of_the_content_and_not_carried_to_subsets() -> None:
    images = torch.arange(2 * 1 * 2 * 2, dtype=torch.uint8).reshape(2, 1, 2, 2)
    data = ImageSet(images, torch.tensor([0, 1]), "toy", 2, (0.5,), (0.5,))
    twin = ImageSet(images.clone(), torch.tensor([0, 1]), "other name", 2, (0.1,), (0.2,))
    assert data.checksum() == twin.checksum()
    assert data.subset(slice(0, 1)).checksum() != data.checksum()
    flipped = ImageSet(images, torch.tensor([1, 0]), "toy", 2, (0.5,), (0.5,))
    assert flipped.checksum() != data.checksum()


def test_not_a_git_checkout(tmp_path: Path) -> None:
    assert provenance.git_state(tmp_path) == {"commit": None, "modified": None}


def test_git_checkout_commit_and_modified(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    clean = provenance.git_state.__wrapped__(tmp_path)
    assert len(clean["commit"]) == 40 and clean["modified"] is False
    (tmp_path / "a.txt").write_text("2")
    assert provenance.git_state.__wrapped__(tmp_path)["modified"] is True


def test_command_line_is_spelled_as_typed() -> None:
    assert provenance.command_line(["/venv/bin/oodbench", "score", "a b"]) == "oodbench score 'a b'"
    with provenance.invoked_as(["report", "x"]):
        assert provenance.command_line() == "oodbench report x"


def test_every_report_says_how_it_was_produced(scored_run: Path, tmp_path: Path) -> None:
    config = json.loads((scored_run / "config.json").read_text())
    digest = config["datasets"]["fashion-mnist:train"]
    texts = {}
    for fmt in ("markdown", "html", "json"):
        out = tmp_path / f"report.{fmt}"
        assert main(["report", str(scored_run), "--format", fmt, "--out", str(out)]) == 0
        texts[fmt] = out.read_text()
    for fmt in ("markdown", "html"):
        text = texts[fmt]
        assert "How this was produced" in text
        assert config["provenance"]["command"] in text  # the training command, to rerun
        assert "oodbench score " in text and "oodbench report " in text
        assert digest in text and "fashion-mnist:train" in text
        assert "torchvision" in text and config["provenance"]["device"] in text
    made = json.loads(texts["json"])["how_produced"]
    assert made["commands"][0] == config["provenance"]["command"]
    assert made["commands"][-1].startswith("oodbench report ")
    assert made["runs"][0]["train"]["datasets"] == config["datasets"]
    assert made["report"]["versions"]["numpy"]


def test_a_010_run_reports_that_nothing_was_recorded(tmp_path: Path) -> None:
    fixture = Path(__file__).parent / "fixtures" / "v010"
    out = tmp_path / "report.md"
    argv = [
        "report",
        str(fixture),
        "--format",
        "markdown",
        "--out",
        str(out),
        "--protocol",
        "paper",
    ]
    assert main(argv) == 0
    section = out.read_text().split("## How this was produced")[1]
    assert "| (not recorded) | — | 1 |" in section
    assert "0.1.0" in section  # the version 0.1.0 did record
