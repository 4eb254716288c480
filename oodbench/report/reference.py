"""Published numbers to compare against: package data (reference.csv) plus --reference FILE.

Every row carries its source and an exact citation in ``note``. ``kind`` is ``value`` (a metric
in %) or ``delta`` (a change CE -> LogitNorm as the source states it; the note says its unit).
"""

from __future__ import annotations

import io
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.errors import UserError

COLUMNS = ("source", "id_dataset", "model", "loss", "detector", "ood_dataset")
VALUES = ("fpr95", "auroc", "aupr")
KEY = (*COLUMNS, "kind")
KINDS = ("value", "delta")
# Different spellings of the same architecture in papers, timm and our registry.
_MODEL_ALIASES = {
    "wideresnet402": "wrn402",
    "wrn40x2": "wrn402",
    "resnet1832x32": "resnet18",
    "resnet18cifar": "resnet18",
}
_OOD_ALIASES = {"average": "average", "texture": "textures", "dtd": "textures", "lsunc": "lsuncrop"}


def norm(name: object) -> str:
    """Compare names loosely: 'CIFAR-10' == 'cifar10', 'WRN-40-2' == 'wrn40_2'."""
    key = re.sub(r"[^a-z0-9]", "", str(name).lower())
    return _MODEL_ALIASES.get(key, _OOD_ALIASES.get(key, key))


def _read(path: Path | str, text: str | None = None) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path if text is None else io.StringIO(text), dtype=str)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read reference file {path}: {exc}") from exc
    return _validate(frame.fillna(""), str(path))


def _validate(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in (*COLUMNS, *VALUES, "note") if c not in frame.columns]
    if missing:
        raise UserError(
            f"reference file {where} lacks columns {', '.join(missing)}; need "
            f"{', '.join((*COLUMNS, *VALUES, 'note'))} (and optional kind)"
        )
    if "kind" not in frame.columns:
        frame["kind"] = "value"
    frame["kind"] = frame["kind"].replace("", "value")
    bad_kind = sorted(set(frame["kind"]) - set(KINDS))
    if bad_kind:
        raise UserError(f"reference file {where}: kind must be value or delta, got {bad_kind[0]!r}")
    for col in VALUES:
        numbers = pd.to_numeric(frame[col].replace("", np.nan), errors="coerce")
        bad = frame[col][numbers.isna() & (frame[col] != "")]
        if len(bad):
            raise UserError(f"reference file {where}: {col} {bad.iloc[0]!r} is not a number")
        frame[col] = numbers
    values = frame[frame["kind"] == "value"][list(VALUES)]
    if ((values < 0) | (values > 100)).any().any():
        raise UserError(f"reference file {where}: values must be percentages in [0, 100]")
    if (frame["source"] == "").any() or (frame["note"] == "").any():
        raise UserError(f"reference file {where}: every row needs a source and a note (citation)")
    return frame


def load_reference(extra: Path | None = None) -> pd.DataFrame:
    """The shipped rows, with rows from ``extra`` added (same key: the extra row wins)."""
    shipped = resources.files("oodbench.report").joinpath("reference.csv").read_text("utf-8")
    frame = _read("oodbench/report/reference.csv", shipped)
    if extra is not None:
        if not Path(extra).is_file():
            raise UserError(f"reference file {extra} does not exist")
        frame = pd.concat([frame, _read(extra)], ignore_index=True)
        frame = frame.drop_duplicates(subset=list(KEY), keep="last")
    return frame.reset_index(drop=True)


def matching(ref: pd.DataFrame, id_dataset: str, model: str, loss: str) -> pd.DataFrame:
    """Value rows for one run setting (names compared loosely)."""
    keys = {"id_dataset": norm(id_dataset), "model": norm(model), "loss": norm(loss)}
    hit = ref["kind"] == "value"
    for col, key in keys.items():
        hit &= ref[col].map(norm) == key
    return ref[hit]


def lookup(rows: pd.DataFrame, detector: str, ood: str) -> pd.Series | None:
    """The first reference row for this detector and OOD set ('Average' matches 'average')."""
    hit = rows[
        (rows["detector"].map(norm) == norm(detector))
        & (rows["ood_dataset"].map(norm) == norm(ood))
    ]
    return hit.iloc[0] if len(hit) else None


def paper_changes(ref: pd.DataFrame) -> pd.DataFrame:
    """CE -> LogitNorm changes the sources report: pairs of value rows, and stated deltas."""
    rows = []
    values = ref[ref["kind"] == "value"]
    ce = values[values["loss"].map(norm) == "ce"]
    ln = values[values["loss"].map(norm) == "logitnorm"]
    on = ["source", "id_dataset", "model", "detector", "ood_dataset"]
    for _, r in ce.merge(ln, on=on, suffixes=("_ce", "_ln")).iterrows():
        row = {k: r[k] for k in on} | {"notes": [r["note_ce"], r["note_ln"]], "stated": False}
        for m in VALUES:
            a, b = r[f"{m}_ce"], r[f"{m}_ln"]
            row[f"{m}_ce"], row[f"{m}_ln"], row[f"{m}_delta"] = a, b, b - a
            row[f"{m}_rel"] = (b - a) / a * 100 if a else np.nan
        rows.append(row)
    for _, r in ref[ref["kind"] == "delta"].iterrows():
        row = {k: r[k] for k in on} | {"notes": [r["note"]], "stated": True}
        for m in VALUES:
            row |= {f"{m}_ce": np.nan, f"{m}_ln": np.nan, f"{m}_delta": r[m], f"{m}_rel": np.nan}
        rows.append(row)
    return pd.DataFrame(rows)
