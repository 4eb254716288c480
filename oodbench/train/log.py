"""What a training run reports and records: the progress bar, RNG states, versions."""

from __future__ import annotations

import platform
import random
from types import TracebackType
from typing import Any

import numpy as np
import rich.progress as rp
import timm
import torch

from oodbench import __version__, provenance
from oodbench.console import stderr
from oodbench.parallel import Dist
from oodbench.provenance import PROVENANCE


class Progress:
    """A rich progress bar on stderr: epoch, step, loss, accuracy, logit norm, images/s."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = rp.Progress(
            rp.TextColumn("[bold]{task.description}"),
            rp.BarColumn(),
            rp.MofNCompleteColumn(),
            rp.TextColumn("{task.fields[stats]}"),
            rp.TimeRemainingColumn(),
            console=stderr,
            # Off a terminal the live bar only adds blank lines to logs; epoch lines still print.
            disable=not (enabled and stderr.is_terminal),
            transient=True,
        )
        self.task: rp.TaskID | None = None

    def __enter__(self) -> Progress:
        self.bar.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bar.__exit__(kind, exc, tb)

    def start_epoch(self, epoch: int, epochs: int, steps: int, start: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(
            f"epoch {epoch + 1}/{epochs}", total=steps, completed=start, stats=""
        )

    def update(self, step: int, sums: torch.Tensor, images: int, seconds: float) -> None:
        if not self.enabled or self.task is None:
            return
        loss, correct, norm, n = sums.tolist()
        n = max(n, 1.0)
        stats = (
            f"loss {loss / n:.4f}  acc {100 * correct / n:.2f}%  |logit| {norm / n:.2f}  "
            f"{images / max(seconds, 1e-9):,.0f} img/s"
        )
        self.bar.update(self.task, completed=step, stats=stats)

    def log_epoch(self, row: dict[str, float]) -> None:
        if self.enabled:
            val = row.get("val_acc", float("nan"))
            self.bar.console.print(
                f"epoch {row['epoch']:>3}  loss {row['train_loss']:.4f}  "
                f"train {row['train_acc']:.2f}%  test {row['test_acc']:.2f}%  "
                + (f"val {val:.2f}%  " if val == val else "")
                + f"|logit| train {row['train_logit_norm']:.2f} "
                f"test {row['test_logit_norm']:.2f}  {row['images_per_s']:,.0f} img/s  "
                f"{row['seconds']:.1f}s"
            )


def rng_states() -> dict[str, Any]:
    """Every global RNG state, in types ``torch.load(weights_only=True)`` accepts."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = states["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached"],
        )
    )
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def environment(ctx: Dist) -> dict[str, Any]:
    return {
        "versions": {
            "oodbench": __version__,
            "torch": torch.__version__,
            "timm": timm.__version__,
            "python": platform.python_version(),
        },
        "world_size": ctx.world,
        "device_type": ctx.device.type,
        PROVENANCE: provenance.collect(ctx.device),
    }
