"""``bench --preset a,b,c``: several settings in one bench, as more jobs of the same graph.

Each setting is the bench of one preset in ``--out/<preset>`` (its usual layout and report
there), with the options typed on the command line applied to every setting. Its jobs keep
their done-markers in ``--out/.jobs`` and their keys relative to ``--out``, so one command
resumes them all and a finished setting is never computed again. One more report job, after
every setting's report, writes ``--out/report.md``: each setting's tables and a summary across
the settings (report/across.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oodbench.bench.jobs import Job, ReportSpec, SettingsSpec
from oodbench.bench.plan import graph
from oodbench.config import BenchConfig, get_preset
from oodbench.errors import UserError


def preset_names(text: str) -> tuple[str, ...]:
    """``a,b`` -> ("a", "b"), every name known and none twice (before any data check)."""
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    if not names:
        raise UserError("--preset needs a name, e.g. --preset offline (or several: a,b)")
    for name in names:
        get_preset(name)  # unknown: one line listing the presets
    if len(set(names)) != len(names):
        raise UserError(f"--preset names a setting twice: {text}")
    return names


def setting_configs(presets: str, out: str, **options: Any) -> list[BenchConfig]:
    """One BenchConfig per preset; each checks its options and that its data is installed,
    all before any job runs. One preset keeps the single-setting layout (``--out`` itself)."""
    names = preset_names(presets)
    if len(names) == 1:
        return [BenchConfig(preset=names[0], out=out, **options)]
    return [BenchConfig(preset=name, out=str(Path(out) / name), **options) for name in names]


def settings_graph(cfgs: list[BenchConfig], out: Path) -> list[Job]:
    """Every setting's jobs, then the combined report after every setting's report."""
    jobs = [job for cfg in cfgs for job in graph(cfg, out)]
    reports = [j for j in jobs if j.kind == "report" and isinstance(j.config, ReportSpec)]
    spec = SettingsSpec(tuple(j.where for j in reports),
                        tuple(j.config.runs for j in reports))  # type: ignore[union-attr]  # fmt: skip
    return [*jobs, Job("report", out, spec, out, needs=tuple(j.key for j in reports))]
