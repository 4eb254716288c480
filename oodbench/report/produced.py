"""The report's "How this was produced" section: the commands that made its runs and the report,
the code and library versions they ran with, the devices, and the checksum of every dataset
read, so that a reader can rerun it and check that they read the same data.

It reads what ``oodbench.provenance`` recorded in each run dir (config.json at training or
import, summary.json at scoring); runs written before 0.2 recorded none and say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oodbench import provenance
from oodbench.provenance import DATASETS, LIBRARIES, PROVENANCE, SCORE_COMMANDS
from oodbench.report.load import Run
from oodbench.report.spec import Cell, TableSpec
from oodbench.runs import RunDir

TITLE = "How this was produced"
UNKNOWN = "not recorded"


@dataclass
class Produced:
    """The report's own provenance, every command in the order they ran, one record per run."""

    report: dict[str, Any]
    commands: list[str]
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"report": self.report, "commands": self.commands, "runs": self.runs}


def produced(runs: list[Run]) -> Produced:
    records = [_record(run) for run in runs]
    here = provenance.collect()
    steps = []  # per run: how it was trained (or imported), then every score call
    for rec in records:
        steps += [rec["train"][PROVENANCE].get("command"), *rec["score"][SCORE_COMMANDS]]
    commands = list(dict.fromkeys(c for c in [*steps, here["command"]] if c))
    return Produced(here, commands, records)


def _record(run: Run) -> dict[str, Any]:
    config = RunDir(run.path).config_values()
    train = config.get(PROVENANCE) or {}
    if not train and config.get("versions"):  # 0.1.0 recorded versions, nothing else
        old = config["versions"]
        train = {"oodbench": old.get("oodbench"),
                 "versions": {k: old.get(k) for k in LIBRARIES}}  # fmt: skip
    return {
        "run": str(run.path),
        "train": {PROVENANCE: train, DATASETS: config.get(DATASETS) or {}},
        "score": {
            PROVENANCE: run.summary.get(PROVENANCE) or {},
            DATASETS: run.summary.get(DATASETS) or {},
            "data_changed": run.summary.get("data_changed") or [],
            SCORE_COMMANDS: run.summary.get(SCORE_COMMANDS) or [],
        },  # fmt: skip
    }


# ------------------------------------------------------------------ as text


def _code(record: dict[str, Any]) -> str:
    if not record:
        return UNKNOWN
    version = record.get("oodbench") or "?"
    git = record.get("git") or {}
    if not git.get("commit"):
        return f"{version} (not a git checkout)" if git else version
    return f"{version} @ {git['commit'][:10]}{' (modified)' if git.get('modified') else ''}"


def _libs(record: dict[str, Any]) -> list[str]:
    versions = record.get("versions") or {}
    return [str(versions.get(name) or "—") for name in LIBRARIES]


def lines(made: Produced) -> list[str]:
    """Prose before the tables: the report's own code and how to rerun everything."""
    return [
        f"This report: oodbench {_code(made.report)}, Python {made.report.get('python', '?')}, "
        + ", ".join(f"{n} {v}" for n, v in zip(LIBRARIES, _libs(made.report), strict=True))
        + ".",
        "To rerun: check out oodbench at the commit of each run (below), install the same "
        "library versions, and run these commands in order; the dataset checksums tell "
        "whether you read the same data (score refuses changed ID data).",
    ]


def tables(made: Produced) -> list[TableSpec]:
    runs = TableSpec(
        "Code, libraries and device per run",
        ["Run", "Stage", "oodbench", *LIBRARIES, "Device"],
        [
            [
                Cell(rec["run"]),
                Cell(stage),
                Cell(_code(info)),
                *map(Cell, _libs(info)),
                Cell(info.get("device") or "—"),
            ]
            for rec in made.runs
            for stage in ("train", "score")
            if (info := rec[stage][PROVENANCE]) or stage == "train"
        ],
    )
    seen: dict[str, dict[str, None]] = {}
    for rec in made.runs:
        for stage in ("train", "score"):
            for key, digest in rec[stage][DATASETS].items():
                seen.setdefault(f"{key}|{digest}", {})[rec["run"]] = None
    missing = sum(not r["train"][DATASETS] for r in made.runs)
    rows = [[Cell(k.split("|")[0]), Cell(k.split("|")[1]), Cell(str(len(r)))]
            for k, r in sorted(seen.items())]  # fmt: skip
    if missing:  # written by an older oodbench
        rows.append([Cell("(not recorded)"), Cell("—"), Cell(str(missing))])
    title = "Datasets read (SHA-256 of the images and labels as built)"
    data = TableSpec(title, ["Dataset:split", "SHA-256", "Runs"], rows)
    changed = [
        f"{rec['run']}: {line}" for rec in made.runs for line in rec["score"]["data_changed"]
    ]
    if changed:
        data.notes.append("Scored with --allow-data-change: " + "; ".join(changed))
    return [runs, data]
