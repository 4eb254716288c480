"""Post-hoc OOD detectors: ``create(name, **hyperparams)``, then ``fit`` and ``score``.

Higher scores always mean more in-distribution. A new detector is one class with
``@register`` in logits.py, features.py or gradients.py.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from oodbench.detectors.base import DETECTORS, NEEDS, Detector, register

# Import order = listing order: logit, feature, then gradient detectors.
# isort: off
from oodbench.detectors import logits, features, gradients  # noqa: F401, E402
# isort: on

__all__ = ["DETECTORS", "NEEDS", "Detector", "create", "detectors_table", "names", "register"]


def create(name: str, **hyperparams: Any) -> Detector:
    """A new detector by registry name; unknown names get a close-match suggestion."""
    return DETECTORS.get(name)(**hyperparams)


def names(include_model: bool = True) -> list[str]:
    """Registered names; ``include_model=False`` leaves out those that rerun the network."""
    return [n for n, cls in DETECTORS.items() if include_model or "model" not in cls.needs]


def detectors_table() -> Table:
    table = Table(
        title="Post-hoc OOD detectors (higher score = more in-distribution)", header_style="bold"
    )
    for col in ("name", "needs", "defaults", "paper"):
        table.add_column(col)
    for name, cls in DETECTORS.items():
        defaults = (
            ", ".join(
                f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in cls.defaults.items()
            )
            or "-"
        )
        table.add_row(name, ", ".join(cls.needs), defaults, cls.paper)
    return table
