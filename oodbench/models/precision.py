"""Numeric precision of training and extraction: fp32, or bf16 autocast where it is native.

bf16 autocast runs matmuls and convolutions in bfloat16 and keeps weights, optimizer state and
losses in float32. On a CPU it is only worth it (and only allowed) with native bf16 units
(AVX512-BF16 or AMX): elsewhere oneDNN emulates bf16 and runs slower than fp32.
``auto`` is what 0.1.0 did: bf16 on CUDA, fp32 on CPU (bitwise reproducible there).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from oodbench.config import PRECISIONS
from oodbench.errors import UserError

__all__ = ["PRECISIONS", "autocast", "cpu_has_native_bf16", "resolve"]


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16, from torch's CPU probe, else from /proc/cpuinfo's flags."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for probe in probes:
        fn = getattr(torch.cpu, probe, None)
        if fn is not None and fn():
            return True
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for this device; a one-line UserError where bf16 is not native."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        raise UserError(
            "--precision bf16 needs a CUDA GPU or a CPU with native bf16 (AVX512-BF16 or "
            "AMX), and this CPU has neither; use --precision fp32"
        )
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise UserError(f"--precision bf16 runs on cpu or cuda, not {device.type}; use fp32")
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast for a resolved ``bf16``; a no-op context for ``fp32``."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
