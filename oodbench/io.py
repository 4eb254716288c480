"""Atomic file writes and a file lock: every file oodbench writes goes to a temp name first.

A kill at any moment leaves either the old file or the new one, never a truncated one, and a
failed write removes its temporary file. A write the machine refuses (full disk, quota, read-only
or unwritable folder) raises ``EnvironmentFault`` naming the target; a folder deleted while we
write (a cache cleaned by hand) is made again and the write retried once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from oodbench.errors import EnvironmentFault, fault_from


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto it.

    Any failure removes the temporary file; one the environment caused (see
    ``oodbench.errors.fault_from``, safetensors' errors included) becomes ``EnvironmentFault``.
    """
    target = Path(path)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        # mkstemp makes 0600 (and some writers, e.g. safetensors, recreate the file 0600):
        # results should be as shareable as open() makes them, so set the mode last.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except Exception as exc:
        fault = fault_from(exc, target)
        if fault is None or fault is exc:
            raise
        raise fault from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):  # never hide the error that got us here
                tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` (e.g. a library's save function), then rename into place."""
    try:
        with atomic_path(path) as tmp:
            writer(tmp)
    except EnvironmentFault as fault:
        if fault.errno != errno.ENOENT:
            raise
        with atomic_path(path) as tmp:  # the folder vanished mid-write: atomic_path remakes it
            writer(tmp)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive advisory lock on ``path + '.lock'`` (for read-modify-write of shared files)."""
    lock = Path(f"{os.fspath(path)}.lock")
    with _open_lock(lock) as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _open_lock(lock: Path) -> Any:
    for attempt in range(2):
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            return open(lock, "a")
        except FileNotFoundError:  # the folder was deleted between mkdir and open: again
            if attempt:
                raise EnvironmentFault(errno.ENOENT, lock) from None
        except OSError as exc:
            fault = fault_from(exc, lock)
            if fault is None:
                raise
            raise fault from exc
    raise AssertionError("unreachable")
