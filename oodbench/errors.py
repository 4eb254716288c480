"""The two exception types users see, each a one-line message with its own exit code.

``UserError``: bad input, exit 2. ``EnvironmentFault``: the machine refused a write (a full disk,
a quota, a read-only or unwritable place), exit 3. Neither ever shows a traceback.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

USER_ERROR_EXIT = 2
FAULT_EXIT = 3

# errno -> (the cause in words, what to do). {elsewhere} is filled in from the path.
_FAULTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free space on that disk, or {elsewhere}"),
    errno.EDQUOT: ("disk quota exceeded", "free space in your quota, or {elsewhere}"),
    errno.EFBIG: ("file too large for that filesystem", "{elsewhere}"),
    errno.EROFS: ("the filesystem is read-only", "{elsewhere}"),
    errno.EACCES: ("permission denied", "fix its permissions, or {elsewhere}"),
    errno.EPERM: ("operation not permitted", "fix its permissions, or {elsewhere}"),
    errno.EIO: ("input/output error", "check the disk, or {elsewhere}"),
    errno.ENOENT: ("its folder vanished while writing", "check what deletes it, or {elsewhere}"),
}
# The errnos that are the environment's fault wherever they happen (cli.main maps these to exit
# 3 even outside a write); ENOENT only counts inside a write, where it means a folder vanished.
FAULT_ERRNOS = frozenset(_FAULTS) - {errno.ENOENT}
_RUST_OS_ERROR = re.compile(r"os error (\d+)")  # safetensors: "I/O error: ... (os error 28)"


class UserError(Exception):
    """Bad input from the user: what was wrong and what to do, on one line.

    The CLI turns it into ``error: <message>`` on stderr and exit code 2, with no traceback.
    """


class EnvironmentFault(OSError):
    """A write the machine refused: ``cannot write <path>: <cause>; <what to do>``.

    An ``OSError`` (with ``errno`` and ``filename`` set), so code that already tolerates a
    failed write (the dataset cache) keeps doing so. The CLI prints it on one line, exit 3.
    ``then`` is the next step after the fix (e.g. the ``--resume`` command); an outer caller
    that knows better replaces it with ``with_next``.
    """

    def __init__(
        self, code: int, path: str | os.PathLike[str], then: str = "", action: str = "write"
    ) -> None:
        super().__init__(code, _FAULTS.get(code, (os.strerror(code), ""))[0], os.fspath(path))
        self.then, self.action = then, action

    def __str__(self) -> str:
        cause, advice = _FAULTS.get(self.errno, (self.strerror, "{elsewhere}"))
        advice = advice.format(elsewhere=_elsewhere(Path(self.filename)))
        return f"cannot {self.action} {self.filename}: {cause}; {advice}" + (
            f"; {self.then}" if self.then else ""
        )

    def __reduce__(self) -> tuple[type[EnvironmentFault], tuple[int, str, str, str]]:
        return EnvironmentFault, (self.errno, self.filename, self.then, self.action)

    def with_next(self, then: str) -> EnvironmentFault:
        fault = EnvironmentFault(self.errno, self.filename, then, self.action)
        fault.__cause__ = self.__cause__
        return fault


def fault_from(
    exc: BaseException, path: str | os.PathLike[str] | None = None, action: str = "write"
) -> EnvironmentFault | None:
    """The ``EnvironmentFault`` that ``exc`` (raised while writing ``path``) is, or None when it
    is something else (a bug, bad input). Knows OSError and safetensors' SafetensorError, which
    carries the OS error only in its text."""
    if isinstance(exc, EnvironmentFault):
        return exc
    code: int | None = None
    if isinstance(exc, OSError):
        code = exc.errno
    elif type(exc).__name__ == "SafetensorError":
        match = _RUST_OS_ERROR.search(str(exc))
        code = int(match.group(1)) if match else None
    if code not in _FAULTS:
        return None
    assert code is not None
    where = path if path is not None else getattr(exc, "filename", None) or "?"
    return EnvironmentFault(code, where, action=action)


def _elsewhere(path: Path) -> str:
    """Where the user can point oodbench instead, for a file under ``path``."""
    env = os.environ.get("OODBENCH_CACHE")
    cache = Path(env).expanduser() if env else Path.home() / ".cache" / "oodbench"
    try:
        path.resolve().relative_to(cache.resolve())
    except (ValueError, OSError):
        return "write elsewhere (--runs-dir, --out, or a copy of the run dir on another disk)"
    return "point OODBENCH_CACHE at a writable folder with space"
