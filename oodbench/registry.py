"""A small generic name -> factory registry with close-match suggestions on a typo, and
``Param``, the one declared-hyperparameter class that detectors and losses share."""

from __future__ import annotations

import builtins
import difflib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar, overload

from oodbench.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories. ``kind`` names what is registered (for error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        self.register(name)(obj)

    def get(self, name: str) -> T:
        if name not in self._items:
            raise UserError(self.unknown_message(name))
        return self._items[name]

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._items), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown {self.kind} {name!r}: {hint}choose from {', '.join(self.names())}"

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)


# ----------------------------------------------------------------- declared hyperparameters


class Param(Generic[T]):
    """One hyperparameter of a detector or a loss: its type (that of ``default`` unless
    ``type`` says otherwise), default, allowed range or choices, and ``grid``, the values a
    tuner tries on validation data (empty = none chosen yet).

    ``low``/``high`` bound numbers; ``low_open``/``high_open`` exclude the bound itself.
    ``symbol`` is how labels show it (``τ``), ``tag`` how run names do (``-t0.04``).

    On a detector it is a class attribute and a data descriptor (``k = Param(50, low=1)``):
    ``detector.k`` is the plain typed value and every assignment goes through ``check``. A
    loss lists its parameters in a tuple, so they carry their ``name`` themselves.
    """

    def __init__(
        self,
        default: T,
        *,
        name: str = "",
        help: str = "",
        type: type | None = None,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        choices: Sequence[T] = (),
        grid: Sequence[T] = (),
        symbol: str = "",
        tag: str = "",
    ) -> None:
        self.type: type = type or builtins.type(default)
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.choices = tuple(choices)
        self.help, self.symbol, self.tag = help, symbol, tag
        self.name, self.owner = name, ""
        self.default = default
        self.grid = tuple(grid)
        if name:  # a wrong default or grid is the author's bug: fail at import, not at use
            self._check_declared()

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.owner = name, getattr(owner, "name", "") or owner.__name__
        self._check_declared()

    def _check_declared(self) -> None:
        self.default = self.check(self.default)
        self.grid = tuple(self.check(v) for v in self.grid)

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

    def check(self, value: Any, owner: str = "", where: str = "", explain: bool = False) -> T:
        """``value`` as this parameter's type, or a one-line UserError naming it (``where``,
        else ``owner.name``) and the allowed values; ``explain`` adds the help text. A string
        is parsed first, as the command line gives it."""
        if isinstance(value, str) and self.type is not str:
            return self.parse(value, owner, where, explain)
        return self._check(value, owner, where, explain)

    def _check(self, value: Any, owner: str, where: str, explain: bool) -> T:
        where = where or f"{owner or self.owner}.{self.name}"
        why = f" ({self.help})" if explain and self.help else ""
        bad = UserError(f"{where} must be {self.describe()}, got {value!r}{why}")
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

    def parse(self, text: str, owner: str = "", where: str = "", explain: bool = False) -> T:
        """A command-line string (``200``, ``0.5``, ``true``) checked as this parameter."""
        value: Any = text
        low = text.strip().lower()
        if self.type is bool:
            value = True if low in _TRUE else False if low in _FALSE else text
        elif self.type in (int, float):
            try:
                value = float(low) if self.type is float or not _is_int(low) else int(low)
            except ValueError:
                pass  # stays text: _check() names it and the range
        return self._check(value, owner, where, explain)

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
        kinds = {int: "a whole number", float: "a finite number"}
        kind = kinds.get(self.type, f"a {self.type.__name__}")
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


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


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
