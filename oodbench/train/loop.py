"""One training loop: single process or DDP (torchrun), resumable, with a history CSV.

The data stay uint8 on the training device; each step gathers a batch with its random crop
and flip (oodbench.data.augment), normalises it and takes one SGD step. Every random draw is a
pure function of (seed, epoch, step, rank), so a run resumed from any checkpoint, even one
written mid-epoch by Ctrl-C, ends with bitwise the same weights on CPU as an uninterrupted run.
Metrics are summed on the device and read once per progress refresh, not per step.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from oodbench import losses
from oodbench import parallel as distributed
from oodbench.config import TrainConfig
from oodbench.data.augment import crop_flip, normalize
from oodbench.data.split import derive_seed
from oodbench.errors import EnvironmentFault, UserError
from oodbench.losses import Loss
from oodbench.models import check_model_name
from oodbench.models import precision as amp
from oodbench.models.weights import (
    Arch,
    check_architecture,
    load_weights_into,
    weights_bytes,
    weights_from_bytes,
)
from oodbench.provenance import DATASETS, RESUME_FIX, check_data
from oodbench.runs import RunDir
from oodbench.train import checkpoint as ck
from oodbench.train.log import Progress, environment, rng_states, set_rng_states
from oodbench.train.plan import Data, epoch_plan, load_data, lr_factor

EVAL_BATCH = 1024
REFRESH_STEPS = 10  # host reads of the metric sums (progress, NaN check, DDP Ctrl-C vote)


class TrainingInterrupted(Exception):
    """Ctrl-C: a checkpoint was written; ``resume_command`` continues the run."""

    def __init__(self, run_dir: Path, resume_command: str) -> None:
        super().__init__(f"interrupted; checkpoint saved in {run_dir}")
        self.run_dir, self.resume_command = run_dir, resume_command


class FeaturesAndLogits(torch.nn.Module):
    """``net`` returning (penultimate features, logits) from one forward, for a loss that sets
    ``needs_features``: one module call, so DDP syncs every gradient the loss produces."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net.forward_head(self.net.forward_features(x), pre_logits=True)
        features = features.flatten(1)
        return features, self.net.get_classifier()(features)


@dataclass(kw_only=True)
class Loop:
    """One training run's state, built by ``build_loop``."""

    cfg: TrainConfig
    ctx: distributed.Dist
    run_dir: Path
    data: Data
    arch: Arch
    net: torch.nn.Module  # the plain model: what is saved, restored and evaluated
    model: torch.nn.Module  # what a step calls: net, maybe FeaturesAndLogits, DDP, compile
    loss: Loss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    batch: int  # images per rank per step
    steps: int  # steps per epoch
    precision: str = "fp32"  # resolved: fp32 or bf16 (autocast)
    history: list[dict[str, float]] = field(default_factory=list)
    stop_requested: bool = False

    @property
    def autocast(self) -> contextlib.AbstractContextManager[object]:
        return amp.autocast(self.precision, self.ctx.device)

    @property
    def channels_last(self) -> bool:
        return channels_last(self.ctx.device, self.precision)

    def step(self, plan: tuple[torch.Tensor, ...], epoch: int, s: int, sums: torch.Tensor) -> None:
        index, dy, dx, flips = (t[s * self.batch : (s + 1) * self.batch] for t in plan)
        x = crop_flip(self.data.padded, index, dy, dx, flips, self.data.size)
        x = normalize(x, self.data.mean, self.data.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.data.labels[index]
        torch.manual_seed(derive_seed(self.cfg.seed, "step", epoch, s, self.ctx.rank))  # dropout
        targets: Any = y
        if self.loss.mixes_inputs:  # e.g. RegMixup: clean + mixed images, its own targets
            seed = derive_seed(self.cfg.seed, "mix", epoch, s, self.ctx.rank)
            x, targets = self.loss.mix_inputs(x, y, seed)
        features, head = None, None
        with self.autocast:
            logits = self.model(x)
        if self.loss.needs_features:
            (features, logits), fc = logits, self.net.get_classifier()
            head = (fc.weight, fc.bias)
            features = features.float()  # no-op in fp32; the loss never sees bf16
        logits = logits.float()
        loss = self.loss(logits, targets, features=features, head=head)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            logits = logits.detach()[: len(y)].float()  # the clean batch when inputs were mixed
            sums += torch.stack(
                [
                    loss.detach().float() * len(y),
                    (logits.argmax(1) == y).sum().float(),
                    torch.linalg.vector_norm(logits, dim=1).sum(),
                    torch.tensor(float(len(y)), device=sums.device),
                ]
            )

    @torch.inference_mode()
    def evaluate(self, split: str = "test") -> tuple[float, float]:
        """Accuracy (%) and mean raw-logit L2 norm on the test set or the ID validation split
        (NaN when it is empty), in big inference batches."""
        net = self.net
        images = getattr(self.data, f"{split}_images")
        labels = getattr(self.data, f"{split}_labels")
        if not len(images):
            return float("nan"), float("nan")
        net.eval()
        correct = norm = torch.zeros((), device=self.ctx.device)
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
        wbytes = weights_bytes(self.net, self.arch.to_json() | {"epoch": epoch, "step": step})
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


def channels_last(device: torch.device, precision: str) -> bool:
    """Channels-last (NHWC) images and weights on CUDA, and on a CPU under bf16 autocast,
    where oneDNN's bf16 (AMX) convolutions want NHWC. fp32 on a CPU stays NCHW, bitwise what
    earlier releases trained."""
    return device.type == "cuda" or precision == "bf16"


def build_loop(cfg: TrainConfig, ctx: distributed.Dist, run_dir: Path) -> Loop:
    precision = amp.resolve(cfg.precision, ctx.device)  # before loading data: fail fast
    data = load_data(cfg, ctx.device)
    arch = Arch(cfg.model, data.info["num_classes"], data.info["in_chans"],
                   data.info["img_size"])  # fmt: skip
    loss = losses.make_loss(cfg.loss, **cfg.loss_params)
    torch.manual_seed(derive_seed(cfg.seed, "init"))
    net = arch.create().to(ctx.device)
    if channels_last(ctx.device, precision):
        net = net.to(memory_format=torch.channels_last)
    model = distributed.wrap(ctx, FeaturesAndLogits(net) if loss.needs_features else net)
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
    return Loop(
        cfg=cfg,
        ctx=ctx,
        run_dir=run_dir,
        data=data,
        arch=arch,
        net=net,
        model=model,
        loss=loss,
        optimizer=optimizer,
        scheduler=scheduler,
        batch=batch,
        steps=steps,
        precision=precision,
    )


def restore(loop: Loop, state: dict[str, Any]) -> None:
    tensors, meta = weights_from_bytes(state["weights"].numpy().tobytes(), str(ck.STATE))
    check_architecture(meta, loop.arch, str(loop.run_dir / ck.STATE), ck.CONFIG)
    load_weights_into(loop.net, tensors, loop.arch, str(loop.run_dir / ck.STATE), ck.CONFIG)
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
            # one rank may see the NaN a step before the others: decide together
            bad = distributed.any_rank(ctx, not bool(torch.isfinite(sums).all()))
            check_finite(loop, epoch, s, sums.new_full((1,), float("nan")) if bad else sums)
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
    nan = (float("nan"), float("nan"))
    test_acc, test_norm = loop.evaluate() if ctx.main else nan
    val_acc = (loop.evaluate("val") if ctx.main else nan)[0]
    return {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": loss_sum / count,
        "train_acc": 100.0 * correct / count,
        "test_acc": test_acc,
        "val_acc": val_acc,
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
    cfg = losses.configure(cfg)  # the loss and its parameters, checked against the registry
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
    chosen: str | UserError = ""
    if ctx.main:
        try:
            chosen = str(ck.prepare_run_dir(runs_dir, name, cfg, resume, overwrite))
        except UserError as exc:
            chosen = exc  # every rank must raise it, or the others would wait forever
    chosen = distributed.broadcast(ctx, chosen)
    if isinstance(chosen, UserError):
        raise chosen
    run_dir = Path(chosen)
    state, saved = None, {}
    if resume and (run_dir / ck.CONFIG).is_file():
        saved = RunDir(run_dir).read_config()
        ck.check_resume_config(saved, cfg)
        state = ck.load_state(run_dir)
    try:
        loop = build_loop(cfg, ctx, run_dir)
    except BaseException:
        # Bad data or model options fail here: leave no empty run dir to block the next try.
        if ctx.main and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise
    # A resumed run continues on the data it started on (0.1.0 runs recorded none).
    check_data(saved.get(DATASETS) or {}, loop.data.info[DATASETS], fix=RESUME_FIX)
    if ctx.main:
        ck.clean_temp_files(run_dir)
        config = cfg.to_json() | loop.data.info | loop.arch.to_json() | environment(ctx)
        config["precision_resolved"] = loop.precision
        ck.write_config(run_dir, config)
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
    except EnvironmentFault as fault:  # a full disk: atomic writes kept the last checkpoint
        then = f"the last checkpoint is kept; then: {resume_command(loop)}"
        raise fault.with_next(then) from fault
    finally:
        signal.signal(signal.SIGINT, previous)
    return run_dir
