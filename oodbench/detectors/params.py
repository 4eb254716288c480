"""Declared detector hyperparameters: ``k = Param(50, low=1)`` on the class.

A ``Param`` is a data descriptor: ``detector.k`` is the plain typed value, and every way of
setting it (the constructor, ``--param knn.k=200``, assignment) goes through ``Param.check``,
the one place that validates a value and names it and its allowed range when it is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Generic, TypeVar, overload

from oodbench.errors import UserError

T = TypeVar("T")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class Param(Generic[T]):
    """One hyperparameter: its type (that of ``default``), default, allowed range or choices,
    and ``grid``, the values a tuner tries on validation data (empty = none chosen yet).

    ``low``/``high`` bound numbers; ``low_open``/``high_open`` exclude the bound itself.
    """

    def __init__(
        self,
        default: T,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        choices: Sequence[T] = (),
        grid: Sequence[T] = (),
        help: str = "",
    ) -> None:
        self.type: type = type(default)
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.choices = tuple(choices)
        self.help = help
        self.name = self.owner = ""
        self.default = default
        self.grid = tuple(grid)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.owner = name, getattr(owner, "name", "") or owner.__name__
        # A wrong default or grid is the detector author's bug: fail at import, not at use.
        for value in (self.default, *self.grid):
            self.check(value)

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Param[T]: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> T: ...
    def __get__(self, obj: object | None, objtype: type | None = None) -> T | Param[T]:
        if obj is None:
            return self
        return obj.__dict__.get(self.name, self.default)  # type: ignore[no-any-return]

    def __set__(self, obj: object, value: Any) -> None:
        obj.__dict__[self.name] = self.check(value, getattr(obj, "name", self.owner))

    # ------------------------------------------------------------ validation, the one place

    def check(self, value: Any, owner: str = "") -> T:
        """``value`` as this parameter's type, or a UserError naming it and the allowed range."""
        where = f"{owner or self.owner}.{self.name}"
        bad = UserError(f"{where} must be {self.describe()}, got {value!r}")
        if self.type is bool:
            if not isinstance(value, bool):
                raise bad
            return value  # type: ignore[return-value]
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad
            if not math.isfinite(value) or (self.type is int and int(value) != value):
                raise bad
            value = self.type(value)
            if not self._in_range(value):
                raise bad
        elif not isinstance(value, self.type):
            raise bad
        if self.choices and value not in self.choices:
            raise bad
        return value  # type: ignore[no-any-return]

    def parse(self, text: str, owner: str = "") -> T:
        """A command-line string (``200``, ``0.5``, ``true``) checked as this parameter."""
        value: Any = text
        low = text.strip().lower()
        if self.type is bool:
            value = True if low in _TRUE else False if low in _FALSE else text
        elif self.type in (int, float):
            try:
                value = float(low) if self.type is float or not _is_int(low) else int(low)
            except ValueError:
                pass  # stays text: check() names it and the range
        return self.check(value, owner)

    def _in_range(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        hi = self.high
        return not (hi is not None and (value > hi or (self.high_open and value == hi)))

    def describe(self) -> str:
        """What is allowed, in words: ``a whole number in [1, inf)``, ``true or false``."""
        if self.type is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(fmt(c) for c in self.choices)
        kind = {int: "a whole number", float: "a number"}.get(self.type, f"a {self.type.__name__}")
        return f"{kind} in {self.range_text()}" if self.type in (int, float) else kind

    def range_text(self) -> str:
        """``[0, 100)``, ``(0, inf)``, ``true/false`` or ``a|b|c``."""
        if self.type is bool:
            return "true/false"
        if self.choices:
            return "|".join(fmt(c) for c in self.choices)
        lo = "-inf" if self.low is None else fmt(self.low)
        hi = "inf" if self.high is None else fmt(self.high)
        left = "(" if self.low is None or self.low_open else "["
        right = ")" if self.high is None or self.high_open else "]"
        return f"{left}{lo}, {hi}{right}"


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def fmt(value: Any) -> str:
    """A value as it appears in labels and the params column: ``90``, ``0.0014``, ``True``.

    Floats print as ``%g`` when that is exact (``90.0`` -> ``90``) and in full otherwise, so
    two different values never share a label or a metrics row.
    """
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)
