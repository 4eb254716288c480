"""One training loop: single process or DDP (torchrun), resumable, with a history CSV.

The data stay uint8 on the training device; each step gathers a batch with its random crop
and flip (oodbench.data.augment), normalises it and takes one SGD step. Every random draw is a
pure function of (seed, epoch, step, rank), so a run resumed from any checkpoint, even one
written mid-epoch by Ctrl-C, ends with bitwise the same weights on CPU as an uninterrupted run.
Metrics are summed on the device and read once per progress refresh, not per step.
"""

from __future__ import annotations

import hashlib
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from oodbench import checkpoint as ck
from oodbench import distributed
from oodbench.config import TrainConfig
from oodbench.data import ImageSet, load
from oodbench.data.augment import crop_flip, draw_crop_flip, normalize, pad_images
from oodbench.errors import UserError
from oodbench.losses import make_loss
from oodbench.models import check_model_name, create_model
from oodbench.trainlog import Progress, environment, rng_states, set_rng_states

EVAL_BATCH = 1024
REFRESH_STEPS = 10  # host reads of the metric sums (progress, NaN check, DDP Ctrl-C vote)


class TrainingInterrupted(Exception):
    """Ctrl-C: a checkpoint was written; ``resume_command`` continues the run."""

    def __init__(self, run_dir: Path, resume_command: str) -> None:
        super().__init__(f"interrupted; checkpoint saved in {run_dir}")
        self.run_dir, self.resume_command = run_dir, resume_command


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from (seed, purpose, epoch, ...): independent streams, no shared state."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def validation_split(cfg: TrainConfig, train_set: ImageSet) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx): a seeded hold-out of ``val_size``; ``--subset`` = first N of the rest.

    The hold-out is drawn from the full training set, so it does not depend on ``--subset``.
    """
    n = len(train_set)
    if cfg.val_size >= n:
        raise UserError(f"--val-size {cfg.val_size} leaves no training data ({n} images)")
    g = torch.Generator().manual_seed(derive_seed(cfg.seed, "val"))
    perm = torch.randperm(n, generator=g)
    val_idx, train_idx = perm[: cfg.val_size].sort().values, perm[cfg.val_size :].sort().values
    if cfg.subset is not None:
        if cfg.subset > len(train_idx):
            raise UserError(
                f"--subset {cfg.subset} is larger than the {len(train_idx)} training images of "
                f"{train_set.name} left after --val-size {cfg.val_size}; use a smaller --subset"
            )
        train_idx = train_idx[: cfg.subset]
    return train_idx, val_idx


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Per-step LR multiplier: linear warm-up, then cosine to 0 or the paper's multistep.

    Multistep milestones are given for a 200-epoch run (80/140) and scale with --epochs.
    """
    total, warm = cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch
    milestones = [round(m * cfg.epochs / 200) * steps_per_epoch for m in cfg.milestones]

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "multistep":
            return cfg.gamma ** sum(step >= m for m in milestones)
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@dataclass
class Data:
    padded: torch.Tensor  # uint8 train images, zero-padded for cropping, on the device
    labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: dict[str, Any] = field(default_factory=dict)


def load_data(cfg: TrainConfig, device: torch.device) -> Data:
    kw = {"root": cfg.root, "download": cfg.download}
    train_set, test_set = load(cfg.dataset, "train", **kw), load(cfg.dataset, "test", **kw)
    if train_set.num_classes < 2:
        raise UserError(f"{cfg.dataset} has no classes to train on; pick an ID dataset")
    train_idx, val_idx = validation_split(cfg, train_set)
    n_test = min(len(test_set), cfg.subset or len(test_set))  # smoke runs evaluate less too
    info = {
        "num_classes": train_set.num_classes,
        "in_chans": train_set.channels,
        "img_size": list(train_set.size),
        "mean": list(train_set.mean),
        "std": list(train_set.std),
        "n_train": len(train_idx),
        "n_test": n_test,
        "val_indices": val_idx.tolist(),
    }
    return Data(
        padded=pad_images(train_set.images[train_idx], cfg.crop_padding).to(device),
        labels=train_set.labels[train_idx].to(device),
        test_images=test_set.images[:n_test].to(device),
        test_labels=test_set.labels[:n_test].to(device),
        size=train_set.size,
        mean=train_set.mean,
        std=train_set.std,
        info=info,
    )


def epoch_plan(
    cfg: TrainConfig, epoch: int, n: int, ctx: distributed.Dist
) -> tuple[torch.Tensor, ...]:
    """This rank's shard of the epoch's permutation and augmentation draws (like a
    DistributedSampler), all derived from (seed, epoch) and moved to the device once."""
    g = torch.Generator().manual_seed(derive_seed(cfg.seed, "epoch", epoch))
    perm = torch.randperm(n, generator=g)
    dy, dx, flips = draw_crop_flip(n, cfg.crop_padding, cfg.flip, g)
    usable = n - n % ctx.world
    mine = slice(ctx.rank, usable, ctx.world)
    return tuple(t[mine].to(ctx.device) for t in (perm, dy, dx, flips))


@dataclass
class Loop:
    cfg: TrainConfig
    ctx: distributed.Dist
    data: Data
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batch: int
    steps: int
    run_dir: Path
    arch: dict[str, Any]
    history: list[dict[str, float]]
    stop_requested: bool = False

    @property
    def autocast(self) -> torch.autocast:
        cuda = self.ctx.device.type == "cuda"
        return torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=cuda)

    def step(self, plan: tuple[torch.Tensor, ...], epoch: int, s: int, sums: torch.Tensor) -> None:
        index, dy, dx, flips = (t[s * self.batch : (s + 1) * self.batch] for t in plan)
        x = crop_flip(self.data.padded, index, dy, dx, flips, self.data.size)
        x = normalize(x, self.data.mean, self.data.std)
        if self.ctx.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.data.labels[index]
        torch.manual_seed(derive_seed(self.cfg.seed, "step", epoch, s, self.ctx.rank))  # dropout
        with self.autocast:
            logits = self.model(x)
        loss = self.loss_fn(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            logits = logits.detach().float()
            sums += torch.stack(
                [
                    loss.detach().float() * len(y),
                    (logits.argmax(1) == y).sum().float(),
                    torch.linalg.vector_norm(logits, dim=1).sum(),
                    torch.tensor(float(len(y)), device=sums.device),
                ]
            )

    @torch.inference_mode()
    def evaluate(self) -> tuple[float, float]:
        """Test accuracy (%) and mean raw-logit L2 norm, in big inference batches."""
        net = ck.unwrap(self.model)
        net.eval()
        correct = norm = torch.zeros((), device=self.ctx.device)
        images, labels = self.data.test_images, self.data.test_labels
        for i in range(0, len(images), EVAL_BATCH):
            x = normalize(images[i : i + EVAL_BATCH], self.data.mean, self.data.std)
            with self.autocast:
                logits = net(x).float()
            correct = correct + (logits.argmax(1) == labels[i : i + EVAL_BATCH]).sum()
            norm = norm + torch.linalg.vector_norm(logits, dim=1).sum()
        net.train()
        n = max(1, len(images))
        return 100.0 * correct.item() / n, norm.item() / n

    def save(self, epoch: int, step: int, partial: dict[str, Any] | None) -> None:
        """train_state.pt first (the commit point), then model.safetensors and history.csv."""
        if not self.ctx.main:
            return
        wbytes = ck.weights_bytes(self.model, self.arch | {"epoch": epoch, "step": step})
        state = {
            "epoch": epoch,
            "step": step,
            "weights": torch.frombuffer(bytearray(wbytes), dtype=torch.uint8),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_states(),
            "history": self.history,
            "partial": partial,
        }
        ck.save_state(self.run_dir, state)
        if step == 0:  # model.safetensors only ever holds finished epochs
            ck.save_weights(self.run_dir, wbytes)
            ck.write_history(self.run_dir, self.history)


def build_loop(cfg: TrainConfig, ctx: distributed.Dist, run_dir: Path) -> Loop:
    data = load_data(cfg, ctx.device)
    arch = {
        "model": cfg.model,
        "num_classes": data.info["num_classes"],
        "in_chans": data.info["in_chans"],
        "img_size": data.info["img_size"],
    }
    torch.manual_seed(derive_seed(cfg.seed, "init"))
    net = create_model(cfg.model, arch["num_classes"], arch["in_chans"], arch["img_size"])
    net = net.to(ctx.device)
    if ctx.device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    model = distributed.wrap(ctx, net)
    if cfg.compile:
        model = torch.compile(model)
    shard = data.labels.shape[0] // ctx.world
    batch = max(1, min(cfg.batch_size // ctx.world, shard))  # --batch-size is the global batch
    steps = shard // batch
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, steps))
    loss_fn = make_loss(cfg.loss, tau=cfg.tau, penalty=cfg.penalty)
    return Loop(
        cfg,
        ctx,
        data,
        model,
        optimizer,
        scheduler,
        loss_fn,
        batch,
        steps,
        run_dir,
        arch,
        history=[],
    )


def restore(loop: Loop, state: dict[str, Any]) -> None:
    tensors, meta = ck.weights_from_bytes(state["weights"].numpy().tobytes(), str(ck.STATE))
    ck.check_architecture(meta, loop.arch, str(loop.run_dir / ck.STATE))
    ck.load_weights_into(loop.model, tensors, loop.arch, str(loop.run_dir / ck.STATE))
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.scheduler.load_state_dict(state["scheduler"])
    # The LR schedule follows the (possibly extended) --epochs of this invocation.
    factor = lr_factor(loop.cfg, loop.steps)
    loop.scheduler.lr_lambdas = [factor]
    for group, base in zip(loop.optimizer.param_groups, loop.scheduler.base_lrs, strict=True):
        group["lr"] = base * factor(loop.scheduler.last_epoch)
    set_rng_states(state["rng"])
    loop.history = list(state["history"])


def resume_command(loop: Loop) -> str:
    launcher = "oodbench"
    if loop.ctx.world > 1:
        launcher = f"torchrun --nproc_per_node={loop.ctx.world} -m oodbench"
    runs_dir, name = loop.run_dir.parent, loop.run_dir.name
    return (
        f"{launcher} train --resume --runs-dir {runs_dir} --name {name} --epochs {loop.cfg.epochs}"
    )


def run_epoch(
    loop: Loop, epoch: int, start: int, partial: dict[str, Any] | None, bar: Progress
) -> dict[str, float] | None:
    """Train one epoch from step ``start``; None if Ctrl-C stopped it (a checkpoint is saved)."""
    ctx, cfg = loop.ctx, loop.cfg
    plan = epoch_plan(cfg, epoch, loop.data.labels.shape[0], ctx)
    sums = torch.zeros(4, device=ctx.device)
    spent = 0.0
    if partial is not None:  # rank 0 saved the all-reduced sums; the others restart from 0
        sums = partial["sums"].to(ctx.device) if ctx.main else sums
        spent = partial["seconds"]
    lr = loop.optimizer.param_groups[0]["lr"] if partial is None else partial["lr"]
    bar.start_epoch(epoch, cfg.epochs, loop.steps, start)
    t0 = time.perf_counter()
    for s in range(start, loop.steps):
        loop.step(plan, epoch, s, sums)
        refresh = (s + 1) % REFRESH_STEPS == 0 or s + 1 == loop.steps
        if refresh:
            check_finite(loop, epoch, s, sums)
            bar.update(
                s + 1, sums, loop.batch * (s + 1 - start) * ctx.world, time.perf_counter() - t0
            )
        stop = (
            loop.stop_requested
            if ctx.world == 1
            else (refresh and distributed.any_rank(ctx, loop.stop_requested))
        )
        if stop and s + 1 < loop.steps:
            distributed.all_reduce_sum(ctx, sums)
            seconds = spent + time.perf_counter() - t0
            loop.save(epoch, s + 1, {"sums": sums.cpu(), "seconds": seconds, "lr": lr})
            raise TrainingInterrupted(loop.run_dir, resume_command(loop))
    train_seconds = spent + time.perf_counter() - t0
    distributed.all_reduce_sum(ctx, sums)
    check_finite(loop, epoch, loop.steps - 1, sums)
    loss_sum, correct, norm_sum, count = sums.tolist()
    t1 = time.perf_counter()
    test_acc, test_norm = loop.evaluate() if ctx.main else (float("nan"), float("nan"))
    return {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": loss_sum / count,
        "train_acc": 100.0 * correct / count,
        "test_acc": test_acc,
        "train_logit_norm": norm_sum / count,
        "test_logit_norm": test_norm,
        "images_per_s": count / max(train_seconds, 1e-9),
        "seconds": train_seconds + time.perf_counter() - t1,
    }


def check_finite(loop: Loop, epoch: int, step: int, sums: torch.Tensor) -> None:
    if not bool(torch.isfinite(sums).all()):
        done = loop.history[-1]["epoch"] if loop.history else 0
        kept = f"the checkpoint of epoch {done} is kept" if done else "no epoch had finished"
        raise UserError(
            f"training diverged: the loss became NaN or inf in epoch {epoch + 1} (step "
            f"{step + 1}); {kept} in {loop.run_dir}; lower --lr or check the data"
        )


def _sigint_handler(loop: Loop) -> Callable[[int, Any], None]:
    def handler(signum: int, frame: Any) -> None:
        loop.stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts now

    return handler


def train(
    cfg: TrainConfig,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
) -> Path:
    """Train ``cfg`` into ``runs_dir/name`` (derived from cfg when None) and return the run dir.

    Raises ``TrainingInterrupted`` after Ctrl-C (a checkpoint is written first) and
    ``UserError`` for bad input or a diverged loss.
    """
    check_model_name(cfg.model)
    ctx = distributed.init(cfg.device)
    try:
        return _train(cfg, Path(runs_dir), name, resume, overwrite, quiet, ctx)
    finally:
        distributed.cleanup(ctx)


def _train(
    cfg: TrainConfig,
    runs_dir: Path,
    name: str | None,
    resume: bool,
    overwrite: bool,
    quiet: bool,
    ctx: distributed.Dist,
) -> Path:
    run_dir = None
    if ctx.main:
        run_dir = ck.prepare_run_dir(runs_dir, name, cfg, resume, overwrite)
    run_dir = Path(distributed.broadcast(ctx, str(run_dir)))
    state = None
    if resume and (run_dir / ck.CONFIG).is_file():
        ck.check_resume_config(ck.read_config(run_dir), cfg)
        state = ck.load_state(run_dir)
    loop = build_loop(cfg, ctx, run_dir)
    if ctx.main:
        ck.clean_temp_files(run_dir)
        ck.write_config(run_dir, cfg.to_json() | loop.data.info | loop.arch | environment(ctx))
    epoch, start, partial = 0, 0, None
    if state is not None:
        restore(loop, state)
        epoch, start, partial = state["epoch"], state["step"], state["partial"]
        if start == 0 and ctx.main:  # re-export in case a kill fell between the two writes
            ck.save_weights(run_dir, state["weights"].numpy().tobytes())
            ck.write_history(run_dir, loop.history)
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, _sigint_handler(loop))
    try:
        with Progress(enabled=ctx.main and not quiet) as bar:
            for e in range(epoch, cfg.epochs):
                row = run_epoch(loop, e, start, partial, bar)
                start, partial = 0, None
                loop.history.append(row)
                loop.save(e + 1, 0, None)
                bar.log_epoch(row)
                stop = distributed.any_rank(ctx, loop.stop_requested)
                if stop and e + 1 < cfg.epochs:
                    raise TrainingInterrupted(run_dir, resume_command(loop))
    finally:
        signal.signal(signal.SIGINT, previous)
    return run_dir
