"""The CLI skeleton: help, version, and one-line usage errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from oodbench import __version__
from oodbench.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oodbench", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("train", "score", "report", "bench", "datasets", "detectors"):
        assert command in result.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"oodbench {__version__}"


@pytest.mark.parametrize(
    "argv",
    [["no-such-command"], ["datasets", "--no-such-option"], ["bench", "--epochs", "many"]],
)
def test_usage_errors_are_one_line_exit_2(argv: list[str]) -> None:
    result = run_cli(*argv)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr


def test_help_and_readme_describe_what_is_registered(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23: no help text or README line still describes the two-loss, six-set 0.1.0."""
    from pathlib import Path

    from oodbench.data import OFFLINE_OOD

    monkeypatch.setenv("COLUMNS", "250")
    assert main(["--help"]) == 0
    top = " ".join(capsys.readouterr().out.split())
    assert "(CE vs LogitNorm)" not in top and "LogitNorm and its successors" in top
    assert main(["train", "--help"]) == 0
    train = " ".join(capsys.readouterr().out.split())
    assert "CE, LogitNorm or logit-penalty" not in train and "t2fnorm" in train
    assert "T2FNorm's feature temperature" in train
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert "six offline OOD sets" not in readme
    sets = ", ".join(f"`{name}`" for name in OFFLINE_OOD)
    assert f"the four offline OOD test sets ({sets};" in readme and len(OFFLINE_OOD) == 4
