"""From command-line options to a TrainConfig: presets, explicit overrides, resumed runs.

Only options the user actually typed override the preset (or, on --resume, the saved
config), so ``oodbench train --resume --name X`` continues X exactly as it was started.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oodbench.config import TRAIN_PRESETS, TrainConfig, resolve_in
from oodbench.errors import UserError
from oodbench.train import checkpoint as ck

PRESETS = TRAIN_PRESETS


def build_config(
    options: dict[str, Any], preset: str | None, resume: bool, runs_dir: Path, name: str | None
) -> TrainConfig:
    """Defaults < preset < (saved config on --resume) < options the user typed (not None)."""
    given = {k: v for k, v in options.items() if v is not None}
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown --preset {preset!r}: choose from {', '.join(PRESETS)}")
        values |= PRESETS[preset]
    if resume:
        probe = TrainConfig.from_json(values | given)
        run_dir = resolve_in(runs_dir, name or probe.default_name())
        if (run_dir / ck.CONFIG).is_file():
            values = dict(ck.read_config(run_dir))
    return TrainConfig.from_json(values | given)
