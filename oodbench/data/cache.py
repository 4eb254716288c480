"""On-disk cache of materialised ImageSets (safetensors + JSON metadata).

Decoding fonts, textures or a CSV takes seconds; reading a safetensors file takes milliseconds.
A cache entry is keyed by the dataset name, split, the identity of its sources (file sizes and
mtimes, seeds, counts) and ``FORMAT_VERSION``, so a changed source or a new rendering recipe
never serves stale arrays. Every entry stores a SHA-256 of its arrays: a file that fails to
load or to verify is rebuilt, never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from oodbench.data.imageset import ImageSet, content_digest, remember_checksum
from oodbench.io import atomic_write_with, file_lock

# Bump when a builder's output changes for the same sources (rendering recipe, crop rule...).
FORMAT_VERSION = 1


def cache_dir() -> Path:
    """``$OODBENCH_CACHE``, else ``~/.cache/oodbench``."""
    env = os.environ.get("OODBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "oodbench"


def download_dir(root: Path | None) -> Path:
    """Where ``--download`` puts files: ``--root``, else ``$OODBENCH_CACHE/downloads``."""
    return root if root is not None else cache_dir() / "downloads"


def file_identity(paths: Iterable[Path]) -> list[list[Any]]:
    """Cheap identity of source files: (path, size, mtime_ns). A changed file changes the key."""
    out = []
    for p in sorted(Path(x) for x in paths):
        st = p.stat()
        out.append([str(p), st.st_size, st.st_mtime_ns])
    return out


def entry_path(name: str, split: str, identity: Any) -> Path:
    key = json.dumps(
        {"name": name, "split": split, "identity": identity, "version": FORMAT_VERSION},
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "datasets" / f"{name}-{split}-{digest}.safetensors"


def read_entry(path: Path) -> ImageSet | None:
    """The cached ImageSet, or None when the file is missing, unreadable or fails its hash."""
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            info = json.loads(fh.metadata()["oodbench"])
        tensors = load_file(str(path))
        images, labels = tensors["images"], tensors["labels"]
        if content_digest(images, labels) != info["sha256"]:
            raise ValueError("hash mismatch")
        data = ImageSet(
            images=images,
            labels=labels,
            name=info["name"],
            num_classes=int(info["num_classes"]),
            mean=tuple(info["mean"]),
            std=tuple(info["std"]),
            meta={**info["meta"], "cache": str(path)},
        )
        remember_checksum(data, info["sha256"])  # verified just now: the run's data checksum
        return data
    except Exception as exc:  # any damage (truncation, bad header, bad JSON) means: rebuild
        print(f"oodbench: cache file {path} is corrupt ({exc}); rebuilding it", file=sys.stderr)
        return None


def write_entry(path: Path, data: ImageSet) -> None:
    info = {
        "name": data.name,
        "num_classes": data.num_classes,
        "mean": list(data.mean),
        "std": list(data.std),
        "meta": data.meta,
        "sha256": data.checksum(),  # also the run's record of this set (provenance)
    }
    tensors = {"images": data.images.contiguous(), "labels": data.labels.contiguous()}
    meta = {"oodbench": json.dumps(info, default=str), "format_version": str(FORMAT_VERSION)}
    atomic_write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def cached(name: str, split: str, identity: Any, build: Callable[[], ImageSet]) -> ImageSet:
    """Return the cached ImageSet for (name, split, identity), building and storing it on a miss.

    The lock makes two processes that miss at once build it once; the second one reads the file.
    """
    path = entry_path(name, split, identity)
    before = _stamp(path)
    hit = read_entry(path)
    if hit is not None:
        return hit
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(path))
        except OSError as exc:  # a read-only, full or foreign cache: the data, uncached
            _cannot_cache(exc)
            return build()
        # Another process may have written the entry while we waited for the lock.
        hit = read_entry(path) if _stamp(path) not in (None, before) else None
        if hit is not None:
            return hit
        data = build()
        try:
            write_entry(path, data)
        except OSError as exc:  # a full cache must not stop a benchmark: it only saves time
            _cannot_cache(exc)
        return data


def _cannot_cache(exc: OSError) -> None:
    """One warning line (an EnvironmentFault names the file, the cause and OODBENCH_CACHE)."""
    print(f"oodbench: warning: {exc}; continuing without the dataset cache", file=sys.stderr)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns
