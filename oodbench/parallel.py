"""Single-process or DDP (torchrun) context: rank, world size, device, and the few collectives.

Under ``torchrun`` the env vars RANK / WORLD_SIZE / LOCAL_RANK are set; NCCL is used on CUDA
and gloo on CPU. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from oodbench.errors import UserError


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is available; use --device cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init(device: str) -> Dist:
    """Join the torchrun process group if there is one; otherwise a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank=rank, world=world, device=dev)


def cleanup(ctx: Dist) -> None:
    if ctx.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(ctx: Dist, tensor: torch.Tensor) -> torch.Tensor:
    if ctx.world > 1:
        dist.all_reduce(tensor)
    return tensor


def any_rank(ctx: Dist, flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank (one small collective)."""
    if ctx.world == 1:
        return flag
    t = torch.tensor([float(flag)], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast(ctx: Dist, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run dir rank 0 chose)."""
    if ctx.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(ctx: Dist, model: torch.nn.Module) -> torch.nn.Module:
    if ctx.world == 1:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
