"""From command-line options to a TrainConfig: presets, explicit overrides, resumed runs.

Only options the user actually typed override the preset (or, on --resume, the saved
config), so ``oodbench train --resume --name X`` continues X exactly as it was started.
The loss and its parameters are checked here against the loss registry, so a typo fails
before any data is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from oodbench import losses
from oodbench.config import TRAIN_PRESETS, TrainConfig, preset_for_loss, resolve_in
from oodbench.errors import UserError
from oodbench.runs import RunDir

PRESETS = TRAIN_PRESETS


def build_config(
    options: dict[str, Any],
    preset: str | None,
    resume: bool,
    runs_dir: Path,
    name: str | None,
    loss_params: Sequence[str] = (),
) -> TrainConfig:
    """Defaults < preset < (saved config on --resume) < options the user typed (not None).

    ``loss_params`` are the ``--loss-param NAME=VALUE`` strings: each must name a parameter
    of the chosen loss.
    """
    given = {k: v for k, v in options.items() if v is not None}
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown --preset {preset!r}: choose from {', '.join(PRESETS)}")
        values |= preset_for_loss(PRESETS[preset], given.get("loss", TrainConfig.loss))
    if resume:
        probe = _with_loss_params(TrainConfig.from_json(values | given), loss_params)
        run_dir = resolve_in(runs_dir, name or losses.default_name(probe))
        if RunDir(run_dir).config.is_file():
            values = RunDir(run_dir).read_config()
    return _with_loss_params(TrainConfig.from_json(values | given), loss_params)


def _with_loss_params(cfg: TrainConfig, items: Sequence[str]) -> TrainConfig:
    typed = losses.parse_loss_params(cfg.loss, items)
    return losses.configure(replace(cfg, loss_params=cfg.loss_params | typed))
