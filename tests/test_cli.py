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
