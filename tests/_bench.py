"""What "the same bench" means for the kill/resume and pool tests: equal weights and equal
numbers, with the record of how each was produced (which differs by design) set aside."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file

from oodbench.provenance import PROVENANCE, SCORE_COMMANDS
from oodbench.runs import KEY, RunDir


def _summary(run: RunDir) -> dict:
    """summary.json without the commands that produced it: a resumed bench's command line ends
    in --resume and names its own --out, and that is the provenance doing its job."""
    summary = json.loads(run.summary.read_text())
    provenance = summary.pop(PROVENANCE)
    summary.pop(SCORE_COMMANDS)
    assert provenance["git"] and provenance["versions"]  # recorded, whatever the command was
    return summary


def same_numbers(out: Path, whole: Path, runs: list[str], rows: int) -> None:
    """Every run under ``out`` has the weights, metrics rows and summary of its twin under
    ``whole``, bit for bit; ``rows`` metrics rows each."""
    for name in runs:
        a, b = RunDir(out / name), RunDir(whole / name)
        wa, wb = load_file(str(a.weights)), load_file(str(b.weights))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
        # weights_hash is the file's SHA-256, and safetensors writes its metadata in a
        # per-process order: equal weights, other bytes. Every number must match exactly.
        new, old = (d.read_metrics().sort_values(KEY).drop(columns="weights_hash") for d in (a, b))
        assert len(new) == rows and new["n_boot"].notna().all(), name
        pd.testing.assert_frame_equal(new.reset_index(drop=True), old.reset_index(drop=True))
        sa, sb = _summary(a), _summary(b)
        keys = sa.keys() | sb.keys()
        differ = {k: (sa.get(k), sb.get(k)) for k in keys if sa.get(k) != sb.get(k)}
        assert not differ, (name, differ)
