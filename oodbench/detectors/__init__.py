"""Post-hoc OOD detectors: ``create(name, **hyperparams)``, then ``fit`` and ``score``.

Higher scores always mean more in-distribution. A new detector is one class with
``@register``, its hyperparameters declared as ``Param`` class attributes (see
docs/detectors.md, "Add your own detector").
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group

from oodbench.config import split_param
from oodbench.console import fitted_tables
from oodbench.detectors.base import (
    DETECTORS,
    NEEDS,
    Detector,
    NotFittedError,
    register,
    unknown_param_message,
)
from oodbench.detectors.params import Param, fmt
from oodbench.errors import UserError

# Import order = listing order: logit, feature, then gradient detectors, then any other module
# of this package (a new detector can be one class in one new file, registered on import).
# isort: off
from oodbench.detectors import logits, features, gradients  # noqa: F401, E402
# isort: on

_OWN = {"base", "params", "logits", "features", "gradients"}
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _OWN and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = ["DETECTORS", "NEEDS", "Detector", "NotFittedError", "Param", "build", "create",
           "detectors_table", "names", "register"]  # fmt: skip


def create(name: str, **hyperparams: Any) -> Detector:
    """A new detector by registry name; unknown names get a close-match suggestion."""
    return DETECTORS.get(name)(**hyperparams)


def names(include_model: bool = True, include_aliases: bool = True) -> list[str]:
    """Registered names; ``include_model=False`` leaves out those that rerun the network,
    ``include_aliases=False`` the old names of other detectors (what "all" expands to)."""
    return [n for n, cls in DETECTORS.items()
            if (include_model or "model" not in cls.needs)
            and (include_aliases or cls.alias_of is None)]  # fmt: skip


def build(
    chosen: Sequence[str], params: Sequence[str] = (), flags: Mapping[str, Any] | None = None
) -> list[Detector]:
    """The chosen detectors ("all" expanded, each once), created with their hyperparameters.

    ``params`` are ``--param DETECTOR.NAME=VALUE`` texts; ``flags`` are the shorthand options
    (``--k``, ``--temperature``: None = unset) that go to every chosen detector taking them.
    A value set twice to two different values is an error, never a silent pick.
    """
    order: list[str] = []
    for name in chosen:
        every = names(include_aliases=False) if name == "all" else [name]
        order += [n for n in every if n not in order]
    classes = {n: DETECTORS.get(n) for n in order}
    values: dict[str, dict[str, Any]] = {n: {} for n in order}
    for flag, value in (flags or {}).items():
        if value is None:
            continue
        takers = [n for n in order if flag in classes[n].params()]
        if not takers:
            every = [n for n, c in DETECTORS.items() if flag in c.params()]
            raise UserError(
                f"--{flag} applies to none of the chosen detectors "
                f"({', '.join(order)}); it is for {', '.join(every)}"
            )
        for n in takers:
            values[n][flag] = classes[n].params()[flag].check(value, n)
    for text in params:
        det, key, raw = split_param(text)
        if det not in DETECTORS:
            raise UserError(f"--param {text}: {DETECTORS.unknown_message(det)}")
        cls = DETECTORS.get(det)
        if det not in classes:
            raise UserError(
                f"--param {text}: {det} is not among the chosen detectors "
                f"({', '.join(order)}); add --detector {det}"
            )
        if key not in cls.params():
            raise UserError(f"--param {text}: {unknown_param_message(cls, key)}")
        value = cls.params()[key].parse(raw, det)
        if key in values[det] and values[det][key] != value:
            raise UserError(
                f"{det}.{key} is set twice ({fmt(values[det][key])} and {fmt(value)}); set it once"
            )
        values[det][key] = value
    return [classes[n](**values[n]) for n in order]


def param_lines(cls: type[Detector]) -> str:
    """One line per hyperparameter: ``k=50 in [1, inf)``."""
    lines = [f"{n}={fmt(p.default)} in {p.range_text()}" for n, p in cls.params().items()]
    return "\n".join(lines) or "-"


def detectors_table(width: int | None = None) -> Group:
    """Name, inputs, hyperparameters and paper of every detector, fitted to ``width``."""
    rows = [[n, ", ".join(c.needs), param_lines(c),
             f"alias of {c.alias_of}" if c.alias_of else c.paper]
            for n, c in DETECTORS.items()]  # fmt: skip
    title = "Post-hoc OOD detectors (higher score = more in-distribution)"
    columns = ["name", "needs", "hyperparameters", "paper"]
    return Group(*fitted_tables(title, columns, rows, width, wrap=(1, 2, 3)))
