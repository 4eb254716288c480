"""Notes under the report's average table: which sets were test and which validation, and
which detectors ran with non-default hyperparameters (moved out of build.py, which had reached
its size limit)."""

from __future__ import annotations

import pandas as pd

from oodbench.report.spec import Report


def roles_note(report: Report) -> list[str]:
    """The test sets (averaged) and the validation sets (choices only), from summary.json."""
    found: dict[str, dict[str, None]] = {"test_ood": {}, "val_ood": {}}
    for g in report.groups:
        for r in g.runs:
            for key, names in found.items():
                names.update(dict.fromkeys(r.summary.get(key) or []))
    if not found["val_ood"]:  # runs scored before 0.2 record neither
        return ["Validation OOD sets: none (nothing was chosen on validation data)."] * bool(
            found["test_ood"]
        )
    return [f"Test OOD sets: {', '.join(found['test_ood'])}. Validation OOD sets (tuning and "
            f"choices only, never averaged): {', '.join(found['val_ood'])}."]  # fmt: skip


def params_note(report: Report) -> list[str]:
    """Detectors run with non-default hyperparameters (``knn[k=10]``) and every value they ran
    with, from metrics.csv's params column (empty in 0.1.0 files); defaults go unmentioned."""
    tidy = report.tidy
    params = tidy["params"] if "params" in tidy.columns else pd.Series("", index=tidy.index)
    found: dict[str, str] = {}
    for det, values in zip(tidy["detector"], params.fillna("").astype(str), strict=True):
        if "[" in det and det in report.detectors:
            # a tuned detector may run other values per run: list each value set once
            seen = [v for v in found.get(det, "").split(" / ") if v]
            found[det] = " / ".join(dict.fromkeys([*seen, *([values] if values else [])]))
    if not found:
        return []
    listed = "; ".join(f"{d} ran {v}" if v else d for d, v in sorted(found.items()))
    return [f"Non-default hyperparameters: {listed}."]
