"""The Detector interface and its registry. Higher scores always mean more in-distribution."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from oodbench.errors import UserError
from oodbench.models.outputs import Outputs
from oodbench.registry import Registry

NEEDS = ("logits", "features", "head", "model")


class Detector:
    """A post-hoc OOD detector: ``fit(train_outputs)`` once, then ``score(outputs) -> Tensor[N]``.

    Subclasses set ``name``, ``needs`` (a subset of NEEDS: "head" = the linear classifier's
    W and b, stored with the cached outputs; "model" = the network and the input images),
    ``defaults`` (hyperparameters) and ``paper`` (where the formula and defaults come from).
    """

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ("logits",)
    defaults: ClassVar[dict[str, Any]] = {}
    paper: ClassVar[str] = ""

    def __init__(self, **hyperparams: Any) -> None:
        unknown = sorted(set(hyperparams) - set(self.defaults))
        if unknown:
            takes = ", ".join(self.defaults) or "no hyperparameters"
            raise UserError(
                f"detector {self.name!r} does not take {', '.join(unknown)}; it takes {takes}"
            )
        self.hp = {**self.defaults, **hyperparams}
        for key, value in self.hp.items():
            self.check(key, value)
        self.fitted = False

    def check(self, key: str, value: Any) -> None:
        """Validate one hyperparameter; the default rule: a finite positive number."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        if not math.isfinite(value) or value <= 0:
            raise UserError(f"{self.name}: {key} must be a finite number > 0, got {value}")

    @property
    def label(self) -> str:
        """Name plus any non-default hyperparameters, e.g. ``knn[k=10]`` (a metrics row key)."""
        changed = {k: v for k, v in self.hp.items() if v != self.defaults[k]}
        if not changed:
            return self.name
        return f"{self.name}[{','.join(f'{k}={_fmt(v)}' for k, v in changed.items())}]"

    @property
    def needs_fit(self) -> bool:
        """True when ``fit`` does something, so callers can skip extracting training data."""
        return type(self).fit is not Detector.fit

    def fit(self, train: Outputs) -> Detector:
        """Fit on the ID training split; the default does nothing."""
        self.fitted = True
        return self

    def score(self, outputs: Outputs) -> torch.Tensor:
        raise NotImplementedError


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


DETECTORS: Registry[type[Detector]] = Registry("detector")


def register(cls: type[Detector]) -> type[Detector]:
    DETECTORS.add(cls.name, cls)
    return cls


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Negative free energy T * logsumexp(f / T) (Liu et al., NeurIPS 2020)."""
    return temperature * torch.logsumexp(logits / temperature, dim=1)


def as_float(t: torch.Tensor) -> torch.Tensor:
    """Scores are computed in float64: ties and tiny differences matter for FPR95."""
    return t.detach().to(torch.float64)
