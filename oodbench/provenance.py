"""What produced a run or a report: code, library versions, device, command line and data.

``collect`` is recorded in config.json by ``train`` and ``import`` and in summary.json by
``score`` (key ``provenance``), beside the content checksum of every dataset the command read
(key ``datasets``: ``"<name>:<split>" -> SHA-256`` of the ImageSet's uint8 images and int64
labels as built, ``ImageSet.checksum``). ``check_data`` compares a run's ID data at scoring
time with what it was trained on. Run dirs of 0.1.0 hold neither key and read as "unknown".
"""

from __future__ import annotations

import contextlib
import functools
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from oodbench import __version__
from oodbench.errors import UserError

LIBRARIES = ("torch", "torchvision", "timm", "numpy")
PROVENANCE, DATASETS = "provenance", "datasets"  # keys in config.json and summary.json
SCORE_COMMANDS = "score_commands"  # summary.json: every score command of the run, in order
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the checkout, when run from one


def collect(device: Any = None, argv: list[str] | None = None) -> dict[str, Any]:
    """This process's code, versions, device and command line (JSON-ready)."""
    return {
        "oodbench": __version__,
        "git": git_state(),
        "versions": library_versions(),
        "python": platform.python_version(),
        "device": device_name(device),
        "command": command_line(argv),
    }


@functools.cache
def git_state(root: Path = PACKAGE_ROOT) -> dict[str, Any]:
    """``{"commit", "modified"}`` of the checkout oodbench runs from; both None when it is not
    run from a git checkout (an installed wheel, no git binary)."""
    unknown: dict[str, Any] = {"commit": None, "modified": None}
    if not (root / ".git").exists():  # a wheel in site-packages may sit inside another repo
        return unknown
    try:
        commit = _git(root, "rev-parse", "HEAD")
        # Tracked files only: a run's own outputs (runs/, caches) must not mark the tree dirty.
        modified = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return unknown
    return {"commit": commit, "modified": modified}


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          timeout=10, check=True)  # fmt: skip
    return done.stdout.strip()


def library_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def device_name(device: Any = None) -> str:
    """``NVIDIA H200`` for a CUDA device, the CPU's model name otherwise."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    if dev.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    return f"CPU: {_cpu_model()}"


@functools.cache
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


_INVOKED: list[list[str]] = []  # the CLI's arguments while oodbench.cli.main runs


@contextlib.contextmanager
def invoked_as(argv: list[str]) -> Iterator[None]:
    """Record ``oodbench ARGV`` as this process's command (the CLI's entry point, also when it
    is called in-process by a test or a script)."""
    _INVOKED.append(["oodbench", *argv])
    try:
        yield
    finally:
        _INVOKED.pop()


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed: ``oodbench train ...``, also under ``python -m oodbench``."""
    if argv is None and _INVOKED:
        return shlex.join(_INVOKED[-1])
    args = list(sys.argv if argv is None else argv)
    if args and Path(args[0]).name == "oodbench":
        args[0] = "oodbench"
    return shlex.join(args)


def data_key(name: str, split: str) -> str:
    return f"{name}:{split}"


SCORE_FIX = (
    "score it on the original data, or pass --allow-data-change to score anyway "
    "(the run records that it did)"
)
RESUME_FIX = "resume it on the original data, or train a new run (--overwrite or another --name)"


def check_data(recorded: dict[str, str], now: dict[str, str], allow: bool = False,
               fix: str = SCORE_FIX) -> list[str]:  # fmt: skip
    """Compare the checksums of data read now with those recorded at training time (keys in
    both). A difference is a UserError ending in ``fix``, or with ``allow`` a returned warning
    line per changed set."""
    changed = [
        f"{key} is not the data the run was trained on (SHA-256 {recorded[key][:12]}... then, "
        f"{now[key][:12]}... now)"
        for key in sorted(set(recorded) & set(now))
        if recorded[key] != now[key]
    ]
    if changed and not allow:
        raise UserError(f"{changed[0]}: its files or oodbench's preprocessing changed; {fix}")
    return changed
