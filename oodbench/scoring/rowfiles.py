"""The run dir's CSVs beside metrics.csv, for the overconfidence track (issue 24):

```
failure.csv   one row per (detector, dataset): failure detection on the ID test set and on
              the shifted mix (correct vs wrong predictions; metrics.failure_metrics)
shift.csv     one row per ID or shifted set: accuracy, calibration and MSP's failure metrics
fsood.csv     metrics.csv's schema: full-spectrum OOD, shifted ID images counted as ID
```

Read and merged like metrics.csv (oodbench.runs): under a file lock, written atomically, rows
keyed and scored with the current weights only. Percent, like metrics.csv; NLL in nats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from oodbench.errors import UserError
from oodbench.io import atomic_write_text, file_lock
from oodbench.runs import FAILURE, FSOOD, SHIFT

FAILURE_FILE, SHIFT_FILE, FSOOD_FILE = FAILURE, SHIFT, FSOOD  # their names: oodbench.runs
RUN_COLUMNS = ["run", "seed", "loss", "tau", "model", "id_dataset"]
FAILURE_VALUES = ["aurc", "eaurc", "augrc", "auroc", "fpr95"]  # metrics.FAILURE, in percent
FAILURE_KEY = ["detector", "dataset"]
FAILURE_COLUMNS = [
    *RUN_COLUMNS, *FAILURE_KEY, "params", "n", "n_wrong", *FAILURE_VALUES,
    *(f"{v}_{end}" for v in FAILURE_VALUES for end in ("lo", "hi")), "n_boot", "weights_hash",
]  # fmt: skip
CALIBRATION = ["accuracy", "ece", "ece_ts", "nll", "nll_ts", "brier", "brier_ts"]
SHIFT_KEY = ["dataset"]
SHIFT_COLUMNS = [
    *RUN_COLUMNS, *SHIFT_KEY, "corruption", "severity", "n", *CALIBRATION, "temperature",
    *(f"msp_{v}" for v in FAILURE_VALUES), "weights_hash",
]  # fmt: skip
CLEAN = "none"  # the corruption of the ID test set's own row in shift.csv (severity 0)


def read_rows(path: Path, columns: list[str]) -> pd.DataFrame:
    """The table (empty when absent); a damaged file is a one-line error."""
    if not path.is_file():
        return pd.DataFrame(columns=columns)
    try:
        table = pd.read_csv(path, dtype={"weights_hash": str, "params": str, "corruption": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a readable CSV ({exc}); move it away and re-run "
                        "'oodbench score'") from exc  # fmt: skip
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{path} lacks columns {', '.join(missing)}; move it away and re-run "
                        "'oodbench score'")  # fmt: skip
    return table


def _lock(path: Path) -> Path:
    return path.parent / f".{path.name}"


def merge_rows(path: Path, rows: list[dict[str, Any]], columns: list[str], key: list[str]
               ) -> None:  # fmt: skip
    """Read-merge-write under the file lock: rows with the same ``key`` are replaced."""
    new = pd.DataFrame(rows, columns=columns)
    with file_lock(_lock(path)):
        old = read_rows(path, columns)
        keep = ~old.set_index(key).index.isin(new.set_index(key).index)
        table = pd.concat([t for t in (old[keep], new) if len(t)], ignore_index=True)
        text = table.sort_values(key, kind="stable").reindex(columns=columns).to_csv(index=False)
        atomic_write_text(path, text)


def current_keys(path: Path, columns: list[str], key: list[str], weights_hash: str
                 ) -> set[tuple[str, ...]]:  # fmt: skip
    """Keys of the rows scored with ``weights_hash``; rows of other weights are dropped."""
    if not path.is_file():
        return set()
    with file_lock(_lock(path)):
        table = read_rows(path, columns)
        current = table["weights_hash"].fillna("").astype(str) == weights_hash
        if not current.all():
            atomic_write_text(path, table[current].reindex(columns=columns).to_csv(index=False))
    return {tuple(str(v) for v in row) for row in table.loc[current, key].itertuples(index=False)}
