"""Extraction sharded over torchrun ranks: ``torchrun --nproc_per_node=N -m oodbench score``.

Each rank runs the forward pass on a contiguous shard of whole batches, rank 0 gathers the
shards (gloo or NCCL) and is the only one that writes the cache. Shards start on batch
boundaries, so every batch has the same images and size as in a single-process pass and the
gathered outputs are bitwise those of one process (tests/test_dist_extract.py).

``prefetch`` fills the cache this way, through ``extract.cached_outputs`` on rank 0; scoring
itself (detectors, metrics, files) then runs on rank 0 from the warm cache, driven by
``scoring.run``, which this module never imports. The network-rerunning detectors (odin,
gradnorm) are not sharded.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from oodbench.config import ScoreConfig
from oodbench.data.imageset import ImageSet
from oodbench.detectors import Detector
from oodbench.parallel import Dist, broadcast
from oodbench.runs import RunDir, done_keys
from oodbench.scoring import inputs
from oodbench.scoring.extract import Outputs, Progress, cached_outputs, extract, linear_head


def world_size() -> int:
    """WORLD_SIZE as set by torchrun (1 outside it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def shard_rows(n: int, batch_size: int, rank: int, world: int) -> range:
    """This rank's contiguous rows: the batches 0..ceil(n / batch_size) split as evenly as
    possible, in rank order, the lower ranks taking the extra batches: rank 0 always has rows
    (when n > 0), the last ranks get none when there are fewer batches than ranks."""
    base, extra = divmod(-(-n // batch_size), world)
    first = rank * base + min(rank, extra)
    last = first + base + (rank < extra)
    return range(min(n, first * batch_size), min(n, last * batch_size))


def _gather_rows(ctx: Dist, part: torch.Tensor, sizes: list[int]) -> torch.Tensor | None:
    """Concatenate every rank's ``part`` (first dim = sizes[rank]) on rank 0, else None.

    Collectives need equal shapes, so shards are padded to the largest and trimmed after.
    """
    longest = max(sizes)
    pad = torch.zeros((longest - len(part), *part.shape[1:]), dtype=part.dtype)
    padded = torch.cat([part, pad]).to(ctx.device)
    if ctx.device.type == "cuda":  # NCCL has all_gather but no gather
        pieces = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(pieces, padded)
    else:
        pieces = [torch.empty_like(padded) for _ in sizes] if ctx.main else None
        dist.gather(padded, pieces, dst=0)
    if not ctx.main:
        return None
    assert pieces is not None
    return torch.cat([p[:s].cpu() for p, s in zip(pieces, sizes, strict=True)])


def extract_sharded(
    ctx: Dist,
    model: torch.nn.Module,
    data: ImageSet,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int = 512,
    like: ImageSet | None = None,
    progress: Progress | None = None,
    precision: str = "fp32",
) -> Outputs | None:
    """The same Outputs as ``extract`` on rank 0 (None on the other ranks)."""
    if ctx.world == 1:
        return extract(model, data, mean, std, batch_size, like, progress, precision=precision)
    rows = [shard_rows(len(data), batch_size, r, ctx.world) for r in range(ctx.world)]
    mine = rows[ctx.rank]
    if len(mine):
        part = extract(model, data, mean, std, batch_size, like, progress, rows=mine,
                       precision=precision)  # fmt: skip
        widths = [part.logits.shape[1], part.features.shape[1]]
    else:
        part, widths = None, [0, 0]
    # Rank 0 always has rows (n > 0); its widths size the empty shards of the others.
    box = [widths]
    dist.broadcast_object_list(box, src=0)
    k, d = box[0]
    logits = part.logits if part else torch.empty(0, k)
    features = part.features if part else torch.empty(0, d)
    sizes = [len(r) for r in rows]
    all_logits = _gather_rows(ctx, logits, sizes)
    all_features = _gather_rows(ctx, features, sizes)
    if not ctx.main:
        return None
    assert all_logits is not None and all_features is not None
    weight, bias = linear_head(model)
    return Outputs(all_logits, all_features, data.labels.clone(), weight, bias)


def prefetch(cfg: ScoreConfig, ctx: Dist, detectors: list[Detector], quiet: bool = False) -> RunDir:
    """Fill the run's cache for everything the scoring will read (ID test and validation, the
    fit split when a pending detector is fitted, each OOD set with pending rows), every rank
    taking its shard. Returns the run dir (rank 0's choice)."""
    # Every rank validates the run dir (so a bad one fails everywhere), rank 0's choice wins.
    run = RunDir(broadcast(ctx, str(inputs.resolve_run_dir(cfg).path)))
    net = inputs.load_network(run.path, ctx.device, cfg.head)
    model, tc, model_hash = net.model, net.train_cfg, net.model_hash
    mean, std = tuple(net.info["mean"]), tuple(net.info["std"])
    with inputs.progress_bar(quiet or not ctx.main) as bar:

        def fetch(key: str, data: ImageSet, like: ImageSet | None = None) -> None:
            """``extract.cached_outputs`` across ranks: rank 0 runs it, deciding hit or miss
            under the cache lock and telling the others; on a miss every rank joins the sharded
            pass and rank 0 writes the file. Only rank 0 ever takes the lock: the others wait
            in the collective."""
            advance = inputs.tracker(bar, f"extract {key} (rank {ctx.rank})", len(data))

            def sharded() -> Outputs | None:  # the Outputs on rank 0, None elsewhere
                return extract_sharded(ctx, model, data, mean, std, cfg.batch_size, like, advance,
                                       cfg.precision)  # fmt: skip

            if ctx.main:
                cached_outputs(run.cache, key, model, data, mean, std, model_hash,
                               compute=sharded, on_lookup=lambda hit: broadcast(ctx, hit),
                               like=like, precision=cfg.precision)  # fmt: skip
            elif not broadcast(ctx, None):
                sharded()
            dist.barrier()  # the file exists for every rank from here on

        id_set = inputs.load_dataset(cfg, tc, tc.dataset, "test")
        fetch(f"{tc.dataset}-test", id_set)
        fit, val = inputs.id_splits(cfg, tc)
        if val is not None:
            fetch(f"{tc.dataset}-val", val)
        # Rows scored with other weights do not count: rank 0 drops them before scoring.
        done = set() if cfg.overwrite else done_keys(run.metrics, model_hash)
        pending = {
            ood: [d for d in detectors if (d.label, ood, cfg.protocol, cfg.convention) not in done]
            for ood in inputs.ood_names(cfg, tc.dataset)
        }
        if any(d.needs_fit for dets in pending.values() for d in dets):
            fetch(f"{tc.dataset}-train", fit)
        geometry = (id_set.channels, *id_set.size)
        for ood in [name for name, dets in pending.items() if dets]:
            fetch(f"{ood}-test", inputs.load_dataset(cfg, tc, ood, "test", geometry), id_set)
    return run
