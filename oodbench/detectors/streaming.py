"""Fits and scores in row chunks, for feature matrices too large to copy: an ImageNet-size
N x D matrix stored as fp16 or bf16 and memory-mapped (``torch.from_numpy(np.memmap(...))``)
stays where it is, and each chunk is converted to float64 on its own.

Below ``STREAM_ELEMENTS`` nothing here changes a computation (one chunk is the whole matrix),
so every number of an ordinary run is bitwise what it was. Above it, class means and the
shared covariance come from one pass over the rows (sums and a scatter matrix about a shift,
accumulated in float64), equal to the two-pass result to float64 rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from oodbench.errors import UserError

# Above this many elements (512 MiB in float64) a matrix is processed in row chunks.
STREAM_ELEMENTS = 2**26
_CHUNK_ELEMENTS = 2**22  # 32 MiB of float64 per chunk


def large(t: torch.Tensor) -> bool:
    return t.numel() > STREAM_ELEMENTS


def row_chunks(n: int, width: int) -> Iterator[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(1, width))
    return (slice(i, i + step) for i in range(0, n, step))


def over_rows(n: int, width: int, fn: Callable[[slice], torch.Tensor]) -> torch.Tensor:
    """fn(rows) for all rows at once when n x width is small, else chunk by chunk, concatenated
    (fn returns one value per row)."""
    if n * width <= STREAM_ELEMENTS:
        return fn(slice(0, n))
    return torch.cat([fn(rows) for rows in row_chunks(n, width)])


def class_moments(
    features: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(classes, class means C x D, shared covariance D x D divided by N) in one pass, float64.
    The rows are shifted by the first rows' mean so the scatter does not cancel."""
    n, d = features.shape
    classes = torch.unique(labels)
    index = torch.searchsorted(classes, labels)
    check_memory(8 * (len(classes) + 2 * d) * d, f"the {len(classes)}-class Gaussian fit")
    shift = features[: min(n, 4096)].to(torch.float64).mean(dim=0)
    sums = torch.zeros(len(classes), d, dtype=torch.float64)
    scatter = torch.zeros(d, d, dtype=torch.float64)
    for rows in row_chunks(n, d):
        x = features[rows].to(torch.float64) - shift
        scatter.addmm_(x.T, x)
        sums.index_add_(0, index[rows], x)
    counts = torch.bincount(index, minlength=len(classes)).to(torch.float64)
    scaled = sums / counts.sqrt()[:, None]
    within = scatter - scaled.T @ scaled
    return classes, shift + sums / counts[:, None], within / n


def scatter_about(features: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """sum_i (h_i - o)(h_i - o)^T in float64, one pass."""
    n, d = features.shape
    out = torch.zeros(d, d, dtype=torch.float64)
    for rows in row_chunks(n, d):
        x = features[rows].to(torch.float64) - origin
        out.addmm_(x.T, x)
    return out


def available_bytes() -> int:
    """Memory this process may still allocate: /proc/meminfo's MemAvailable, capped by a
    cgroup v2 limit when one is set (0 where neither can be read: no check)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
        group = Path("/sys/fs/cgroup")
        limit = (group / "memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int((group / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return max(0, min(found)) if found else 0


def check_memory(nbytes: int, what: str) -> None:
    """A one-line error instead of an out-of-memory kill when ``nbytes`` cannot be allocated."""
    free = available_bytes()
    if free and nbytes > free:
        raise UserError(
            f"{what} needs {nbytes / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB of memory "
            "is available; score fewer rows at a time or use a machine with more memory"
        )
