"""Top-k similarities to a bank of unit vectors: exact fp32, or bf16 candidates with an exact
fp32 finish where the hardware multiplies bf16 natively (AMX, AVX512-BF16, CUDA).

The bf16 search is exact in what it returns: it keeps, for every query, every bank row whose
true similarity could reach the k-th largest (a proven bound on the bf16 error, below), then
recomputes those candidates' similarities in fp32 and takes the top k of them. A query whose
candidates do not fit the re-ranking width falls back to the exact fp32 row. The values equal
the full fp32 matmul's to float rounding (a different kernel sums the same products), not bit
for bit; ``search="exact"`` keeps the bitwise path.

The bound, for a query z and a bank row b with bf16 roundings z', b' (unit roundoff u = 2^-8)::

    |z.b - z'.b'| <= ||z - z'|| ||b|| + ||z'|| ||b - b'||      (Cauchy-Schwarz)
    fp32 accumulation of d products: <= d 2^-24 ||z'|| ||b'|| / (1 - d 2^-24)
    the bf16 result's own rounding:   <= u |z'.b'|

with the norms measured per query and maximised over the bank, all doubled for safety. If the
k-th largest bf16 similarity is L, every true top-k row has a bf16 similarity >= L - 2e.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import torch

# Query rows per matmul chunk: keeps the (chunk x bank) similarity block near 128 MiB.
_BLOCK_ELEMENTS = 2**25
_FAISS_MIN_BANK = 1_000_000
SEARCHES = ("auto", "exact", "bf16")


def chunks(n: int, width: int) -> list[slice]:
    step = max(1, _BLOCK_ELEMENTS // max(1, width))
    return [slice(i, i + step) for i in range(0, n, step)]


@cache
def native_bf16(device_type: str = "cpu") -> bool:
    """True where a bf16 matmul runs on matrix hardware: CUDA, or a CPU with AMX or
    AVX512-BF16 (elsewhere torch emulates it, about 100x slower than fp32 on AVX2)."""
    if device_type == "cuda":
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def search_mode(device_type: str = "cpu") -> str:
    """``OODBENCH_KNN_SEARCH``: auto (bf16 where native), exact or bf16."""
    mode = os.environ.get("OODBENCH_KNN_SEARCH", "auto")
    if mode not in SEARCHES:
        from oodbench.errors import UserError

        raise UserError(f"OODBENCH_KNN_SEARCH must be one of {', '.join(SEARCHES)}, got {mode!r}")
    if mode == "auto":
        return "bf16" if native_bf16(device_type) else "exact"
    return mode


def top_exact(z: torch.Tensor, bank: torch.Tensor, k: int) -> torch.Tensor:
    """The k largest fp32 similarities of each row of z to the bank, descending."""
    out = torch.empty(len(z), k, dtype=z.dtype, device=z.device)
    for part in chunks(len(z), len(bank)):
        out[part] = (z[part] @ bank.T).topk(k, dim=1).values
    return out


class Bf16Search:
    """bf16 candidates with a proven margin, then exact fp32 similarities of the candidates.
    ``fallbacks`` counts the queries that took the exact fp32 row (their margin was crossed)."""

    def __init__(self, bank: torch.Tensor, width: int | None = None) -> None:
        self.bank = bank
        self.low = bank.bfloat16()
        self.width = width
        d = bank.shape[1]
        self.bank_err = float((bank - self.low.float()).norm(dim=1).max())
        self.bank_norm = float(bank.norm(dim=1).max())
        self.low_norm = float(self.low.float().norm(dim=1).max())
        self.gamma = d * 2.0**-24 / (1 - d * 2.0**-24)
        self.fallbacks = 0

    def margin(self, z: torch.Tensor, zl: torch.Tensor) -> torch.Tensor:
        """Per query: an upper bound on |true - bf16 similarity| for every bank row, x2."""
        zl32 = zl.float()
        z_err, z_norm = (z - zl32).norm(dim=1), zl32.norm(dim=1)
        product = z_norm * self.low_norm  # bounds |z'.b'|
        err = z_err * self.bank_norm + z_norm * self.bank_err
        err = err + self.gamma * product + 2.0**-8 * product * (1 + self.gamma)
        return 2 * err

    def top(self, z: torch.Tensor, k: int) -> torch.Tensor:
        n = len(self.bank)
        width = self.width or 4 * k + 64
        if width >= n:  # the bank is barely larger than k: nothing to prune
            return top_exact(z, self.bank, k)
        out = torch.empty(len(z), k, dtype=z.dtype, device=z.device)
        for part in chunks(len(z), n):
            out[part] = self._top_chunk(z[part], k, width)
        return out

    def _top_chunk(self, z: torch.Tensor, k: int, width: int) -> torch.Tensor:
        zl = z.bfloat16()
        approx, idx = (zl @ self.low.T).topk(width, dim=1)
        approx = approx.float()
        e = self.margin(z, zl)
        # a row outside the top `width` has a bf16 value <= approx[:, -1]; when that could
        # still reach the k-th largest true similarity, the candidates may be incomplete.
        crossed = approx[:, -1] >= approx[:, k - 1] - 2 * e
        exact = torch.einsum("rwd,rd->rw", self.bank[idx], z)
        top = exact.topk(k, dim=1).values
        if crossed.any():
            self.fallbacks += int(crossed.sum())
            top[crossed] = top_exact(z[crossed], self.bank, k)
        return top


def top_similarities(
    z: torch.Tensor, bank: torch.Tensor, k: int, search: str = "exact"
) -> torch.Tensor:
    """The k largest similarities of each row of z to the bank, descending (see the module)."""
    if search == "bf16":
        return Bf16Search(bank).top(z, k)
    if len(bank) > _FAISS_MIN_BANK and z.device.type == "cpu":
        try:
            import faiss
        except ImportError:
            return top_exact(z, bank, k)
        index = faiss.IndexFlatIP(bank.shape[1])
        index.add(bank.numpy())
        return torch.from_numpy(index.search(z.numpy(), k)[0].copy())
    return top_exact(z, bank, k)


class RawBank:
    """A bank too large to copy, kept as stored (a memory-mapped fp16/bf16 N x D matrix) with
    fp32 inverse row norms: similarities z . h_j / ||h_j|| in fp32, bank chunk by bank chunk,
    merged into a running top-k. Equal to the normalised bank's to float rounding."""

    def __init__(self, raw: torch.Tensor) -> None:
        from oodbench.detectors.streaming import over_rows

        self.raw = raw
        norms = over_rows(len(raw), raw.shape[1], lambda r: raw[r].float().norm(dim=1))
        self.inverse = 1 / norms.clamp(min=1e-12)  # F.normalize's eps

    def __len__(self) -> int:
        return len(self.raw)

    def top(self, z: torch.Tensor, k: int) -> torch.Tensor:
        n, d = self.raw.shape
        step = max(k, _BLOCK_ELEMENTS // 2 // d)  # bank rows per fp32 chunk (64 MiB)
        out = torch.empty(len(z), k, dtype=z.dtype)
        for part in chunks(len(z), step):
            best = torch.empty(len(z[part]), 0, dtype=z.dtype)
            for i in range(0, n, step):
                sim = (z[part] @ self.raw[i : i + step].float().T) * self.inverse[i : i + step]
                merged = torch.cat([best, sim], dim=1)
                best = merged.topk(min(k, merged.shape[1]), dim=1).values
            out[part] = best
        return out
