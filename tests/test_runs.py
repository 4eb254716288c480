"""oodbench.runs: the one owner of run-dir file names, their readers and the metrics schema."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest
import torch

import oodbench
from oodbench import runs
from oodbench.errors import UserError
from oodbench.runs import RunDir

FILE_NAMES = (runs.CONFIG, runs.WEIGHTS, runs.STATE, runs.HISTORY, runs.METRICS, runs.SUMMARY,
              runs.REPORT, runs.TAU_SWEEP)  # fmt: skip


def _code_strings(tree: ast.AST) -> list[str]:
    """Every string constant of a module except docstrings (prose may name files)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_run_dir_file_names_are_spelled_in_runs_only() -> None:
    package = Path(oodbench.__file__).parent
    spelled = {
        f"{path.relative_to(package)}: {name}"
        for path in package.rglob("*.py")
        if path != package / "runs.py"
        for text in _code_strings(ast.parse(path.read_text()))
        for name in FILE_NAMES
        if name in text
    }
    assert not spelled, sorted(spelled)
    assert all(name in _code_strings(ast.parse((package / "runs.py").read_text()))
               for name in FILE_NAMES)  # fmt: skip


def _row(**kw: object) -> dict[str, object]:
    row: dict[str, object] = {c: 1.0 for c in runs.COLUMNS}
    row.update(detector="msp", ood_dataset="gaussian", protocol="paper", convention="id-positive")
    return {**row, **kw}


def test_one_reader_fills_what_older_files_lack_and_refuses_the_rest(tmp_path: Path) -> None:
    path = tmp_path / runs.METRICS
    old = {k: v for k, v in _row().items() if k not in runs.OPTIONAL}
    pd.DataFrame([old]).to_csv(path, index=False)
    table = runs.read_metrics(path)
    assert (table["weights_hash"] == "").all() and table["aupr_in"].isna().all()
    assert runs.drop_stale(path, "abc") == 1  # rows that recorded no weights are stale
    pd.DataFrame([{k: v for k, v in old.items() if k != "auroc"}]).to_csv(path, index=False)
    with pytest.raises(UserError, match="lacks columns auroc"):
        runs.read_metrics(path)


def test_done_keys_count_only_rows_of_the_current_weights(tmp_path: Path) -> None:
    path = tmp_path / runs.METRICS
    runs.merge_metrics(path, [_row(weights_hash="new"), _row(detector="knn", weights_hash="old")])
    assert runs.done_keys(path) == {("knn", "gaussian", "paper", "id-positive"),
                                    ("msp", "gaussian", "paper", "id-positive")}  # fmt: skip
    assert runs.done_keys(path, "new") == {("msp", "gaussian", "paper", "id-positive")}


def test_ood_means_averages_one_protocol_and_convention() -> None:
    table = pd.DataFrame(
        [
            _row(ood_dataset="a", fpr95=10.0, auroc=90.0),
            _row(ood_dataset="b", fpr95=30.0, auroc=70.0),
            _row(ood_dataset="gaussian", fpr95=99.0),
            _row(ood_dataset="a", fpr95=50.0, protocol="full"),
            _row(ood_dataset="a", fpr95=60.0, convention="ood-positive"),
            _row(detector="energy", ood_dataset="a", fpr95=5.0),
        ]
    )
    means = runs.ood_means(table, "paper", "id-positive", exclude=["gaussian"])
    assert means.loc["msp"].tolist() == [20.0, 80.0] and means.loc["energy", "fpr95"] == 5.0
    only = runs.ood_means(table, "paper", "id-positive", only=["gaussian"])
    assert only.index.tolist() == ["msp"] and only.loc["msp", "fpr95"] == 99.0


def test_scores_are_reused_only_for_the_same_inputs(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    scores = torch.arange(4, dtype=torch.float64)
    run.save_scores("knn[k=7]", "gaussian", scores, {"weights_hash": "w"})
    assert torch.equal(run.load_scores("knn[k=7]", "gaussian", {"weights_hash": "w"}), scores)
    assert run.load_scores("knn[k=7]", "gaussian", {"weights_hash": "other"}) is None
    assert run.read_scores("knn[k=7]", "gaussian").tolist() == [0.0, 1.0, 2.0, 3.0]
    assert run.read_scores("knn[k=7]", "mnist-5k") is None
    run.scores_file("knn[k=7]", "gaussian").write_bytes(b"broken")
    assert run.load_scores("knn[k=7]", "gaussian", {"weights_hash": "w"}) is None
    with pytest.raises(UserError, match="corrupt or truncated"):
        run.read_scores("knn[k=7]", "gaussian")
