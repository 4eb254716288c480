"""Every study table of README.md and docs/results.md is regenerated from the committed CSVs
(scripts/study_docs.py) and must match the markdown byte for byte (issue 23)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPTS = Path(__file__).parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import study_docs  # noqa: E402
import study_tables  # noqa: E402


def test_docs_tables_match_the_committed_csvs() -> None:
    wanted = study_docs.used_blocks()
    assert {"readme-fpr95", "readme-auroc", "far-claims", "far-fpr95", "ranks"} <= wanted
    made = {k: f() for k, f in study_docs.blocks().items() if k in wanted}
    for path in study_docs.FILES:
        _, changed = study_docs.regenerate(path.read_text(), made)
        assert not changed, (f"{path.name}: blocks {changed} drifted from docs/study*/ CSVs; "
                             "run .venv/bin/python scripts/study_docs.py")  # fmt: skip


@pytest.mark.slow  # tens of seconds: CI runs it in the slow pass
def test_the_committed_matrix_csvs_match_their_report_csvs() -> None:
    from oodbench.report.matrix import matrix_from_csv

    for report in (study_docs.STUDY / "far.csv", study_docs.STUDY / "near-only.csv",
                   study_docs.EARLY / "far.csv"):  # fmt: skip
        text = matrix_from_csv(pd.read_csv(report)).to_csv(
            index=False, float_format="%.4f", lineterminator="\n")  # fmt: skip
        assert text == report.with_suffix(".matrix.csv").read_text(), report


def test_a_drifted_block_is_found_and_rewritten() -> None:
    text = "a\n<!-- study:x -->\nold\n<!-- /study:x -->\nb\n"
    new, changed = study_docs.regenerate(text, {"x": "new"})
    assert changed == ["x"] and new == "a\n<!-- study:x -->\nnew\n<!-- /study:x -->\nb\n"
    assert study_docs.regenerate(new, {"x": "new"})[1] == []
    with pytest.raises(KeyError):
        study_docs.regenerate(text, {})


def test_the_study_tables_pick_nothing_on_test_numbers() -> None:
    summary = study_tables.matrix_summary(study_docs.FAR, tuned=True)
    assert "best" not in summary.lower()  # no best detector read off test FPR95
