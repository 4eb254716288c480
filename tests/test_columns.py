"""Terminal output fits 80 columns: no truncated header (``Dete…``), no line longer than the
terminal, no row of blank cells from a column squeezed to nothing (issue 16)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from oodbench.console import fitted_tables, split_columns
from oodbench.report.formats import rich_table
from oodbench.report.spec import Cell, TableSpec

FIXTURE = Path(__file__).parent / "fixtures" / "v010"
WIDTH = 80


def problems(text: str, width: int = WIDTH) -> list[str]:
    """Every line that breaks the rules, with the reason."""
    out = []
    for line in text.splitlines():
        if cell_len(line) > width:
            out.append(f"too long ({cell_len(line)}): {line}")
        if "…" in line:
            out.append(f"truncated: {line}")
        if "│" in line and re.fullmatch(r"[│ ]+", line):
            out.append(f"blank cells: {line!r}")
    return out


def cli(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "COLUMNS": str(WIDTH), "LINES": "50", "TERM": "xterm"}
    done = subprocess.run(
        [sys.executable, "-m", "oodbench", *args], capture_output=True, text=True, env=env,
        cwd=cwd, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_checker_catches_each_problem() -> None:  # guard: the tests below can fail
    assert problems("x" * 81) and problems("Dete… |") and problems("│    │      │")
    assert not problems("│ msp │ 12.3 │")


def test_datasets_fits_80_columns() -> None:
    text = cli("datasets")
    assert not problems(text), problems(text)
    for header in ("name", "kind", "geometry", "classes", "here", "source"):
        assert re.search(rf"┃ {header}\s", text), header
    assert "fashion-mnist" in text and "folder:PATH" in text


def test_detectors_fits_80_columns() -> None:
    text = cli("detectors")
    assert not problems(text), problems(text)
    from oodbench.detectors import names

    for name in names():  # every detector is listed, whole
        assert re.search(rf"│ {re.escape(name)}\s", text), name


def _two_runs(tmp_path: Path) -> list[Path]:
    """The 0.1.0 fixture run twice: once relabelled as CE, once as LogitNorm."""
    out = []
    for name, loss, tau in (("ce", "ce", None), ("ln", "logitnorm", 0.04)):
        run = tmp_path / name
        shutil.copytree(FIXTURE, run)
        for file in ("config.json", "summary.json"):
            data = json.loads((run / file).read_text())
            data.update(loss=loss, tau=tau)
            (run / file).write_text(json.dumps(data))
        rows = list(csv.DictReader((run / "metrics.csv").open()))
        for row in rows:
            row.update(loss=loss, tau="" if tau is None else str(tau), run=name)
        with (run / "metrics.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        out.append(run)
    return out


def test_rich_report_fits_80_columns(tmp_path: Path) -> None:
    runs = _two_runs(tmp_path)
    text = cli("report", *map(str, runs), "--protocol", "paper", cwd=tmp_path)
    assert not problems(text), problems(text)[:5]
    # every section is there, and the per-detector tables were split, not squeezed
    for section in ("Runs", "Average over OOD sets", "CE vs LogitNorm", "Per OOD set"):
        assert section in text
    assert "Detector: msp (1/2)" in text and "Detector: msp (2/2)" in text
    assert "FPR95↓" in text and "AUROC↑" in text


@pytest.mark.parametrize("runs", [1, 3, 6])
def test_interval_cells_and_many_columns_fit(runs: int) -> None:
    """Interval text such as ``12.34 [11.02, 13.71]`` and many runs still fit: the columns
    spill into continuation tables that repeat the row labels."""
    columns = ["OOD set"] + [f"Run {r} {m}" for r in range(runs) for m in ("FPR95↓", "AUROC↑")]
    rows = [[Cell(f"ood-{i}")] + [Cell("12.34 [11.02, 13.71]")] * (len(columns) - 1)
            for i in range(40)]  # fmt: skip
    spec = TableSpec("Detector: knn", columns, rows, notes=["a note " * 30])
    buffer = Console(width=WIDTH, file=None, record=True, color_system=None)
    with buffer.capture() as captured:
        buffer.print(rich_table(spec, width=WIDTH))
    text = captured.get()
    assert not problems(text), problems(text)[:5]
    assert text.count("12.34 [11.02, 13.71]") == 40 * (len(columns) - 1)
    assert text.count("│ ood-39 ") == len(split_columns([7] + [20] * (len(columns) - 1), WIDTH))


def test_split_columns_packs_in_order_and_keeps_labels() -> None:
    parts = split_columns([10, 20, 20, 20, 50], 60)
    assert parts == [[0, 1, 2], [0, 3], [0, 4]]
    assert all(p[0] == 0 for p in parts)
    one = fitted_tables("t", ["a", "b"], [["x", "y"]], 80)
    assert len(one) == 1 and one[0].title == "t"
