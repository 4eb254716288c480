"""Fast start: `oodbench --help` (and each command's --help) never imports the heavy stack."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "timm", "torchvision", "pandas", "sklearn", "matplotlib")
PROBE = """
import contextlib, io, sys
from oodbench.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
print(code, *sorted(m for m in {heavy} if m in sys.modules))
"""


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["score", "--help"]])
def test_help_imports_no_heavy_module(argv: list[str]) -> None:
    probe = PROBE.format(heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()  # fmt: skip
    assert out == ["0"], out  # exit 0 and not one of HEAVY imported


# What `score` on a cached run and `report` import before their work: torch and pandas (they
# use them), never the model, vision, plotting or scikit-learn stacks (imported where used).
LAZY = ("timm", "torchvision", "sklearn", "matplotlib")


@pytest.mark.parametrize("module", ["oodbench.scoring.run", "oodbench.report"])
def test_score_and_report_import_only_what_they_use(module: str) -> None:
    probe = f"import sys, {module}; print('ok', *sorted(m for m in {LAZY} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()  # fmt: skip
    assert out == ["ok"], out
