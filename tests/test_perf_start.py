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
