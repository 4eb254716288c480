"""Training throughput, every variant in ONE process, interleaved, best of N rounds.

Variants, all on small_cnn / Fashion-MNIST, batch 128, SGD, the same batches:
- ``loop fp32``: oodbench's step as `oodbench train` runs it (gather + crop/flip on uint8,
  normalise, forward/backward/SGD, metrics summed on the device, a host read every 10 steps);
- ``bare fp32``: forward/backward/SGD only, on batches prepared before the clock starts;
- ``loop bf16`` and ``bare bf16``: the same under bf16 autocast (skipped without native bf16);
- ``textbook``: PIL Dataset + transforms.Compose + DataLoader(num_workers=2,
  persistent_workers=True), the workers started before the clock.
Rounds alternate the variants (A B C D E, A B C D E, ...) so that a machine shared with other
jobs slows them alike; the best round of each is reported, with the load average beside it.
Then whole processes, alternated too: `oodbench train --epochs 2` against the textbook loop
in its own process (imports, data, workers, 2 epochs).

    .venv/bin/python benchmarks/train_throughput.py --quick   # < 3 minutes on 2 idle cores
    .venv/bin/python benchmarks/train_throughput.py           # full epochs (55,000 images)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from oodbench.config import TrainConfig
from oodbench.data import load
from oodbench.data.augment import crop_flip, normalize
from oodbench.data.split import validation_split
from oodbench.models import precision as amp
from oodbench.parallel import init
from oodbench.train.loop import REFRESH_STEPS, Loop, build_loop
from oodbench.train.plan import epoch_plan

ROOT = Path(__file__).resolve().parents[1]


class PILDataset(Dataset):
    """The textbook dataset: PIL images, a transforms.Compose applied per sample."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float):
        self.images = [Image.fromarray(img[0].numpy(), mode="L") for img in images]
        self.labels = labels.tolist()
        self.transform = transforms.Compose(
            [
                transforms.RandomCrop(28, padding=2),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize((mean,), (std,)),
            ]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), self.labels[i]


def textbook_loader(cfg: TrainConfig) -> DataLoader:
    train_set = load("fashion-mnist", "train")
    idx, _ = validation_split(cfg, train_set)
    data = PILDataset(train_set.images[idx], train_set.labels[idx], train_set.mean[0],
                      train_set.std[0])  # fmt: skip
    return DataLoader(data, batch_size=cfg.batch_size, shuffle=True, num_workers=2,
                      drop_last=True, persistent_workers=True)  # fmt: skip


def sgd(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)  # fmt: skip


def loop_steps(loop: Loop, plan: tuple[torch.Tensor, ...], steps: int) -> None:
    """run_epoch's per-step work without the progress bar: the step and the periodic read."""
    sums = torch.zeros(4)
    for s in range(steps):
        loop.step(plan, 0, s, sums)
        if (s + 1) % REFRESH_STEPS == 0:
            bool(torch.isfinite(sums).all())


def bare_steps(loop: Loop, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with_amp = amp.autocast(loop.precision, loop.ctx.device)
    for x, y in batches:
        with with_amp:
            logits = loop.net(x)
        loss = F.cross_entropy(logits.float(), y)
        loop.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loop.optimizer.step()


def textbook_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, it: Iterator,
                   steps: int) -> None:  # fmt: skip
    for _ in range(steps):
        x, y = next(it)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def timed(fn: Callable[[], None]) -> tuple[float, float]:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, os.getloadavg()[0]


def in_process(cfg: TrainConfig, rounds: int, steps: int | None) -> list[tuple[str, float, float]]:
    ctx = init("cpu")
    loop = build_loop(cfg, ctx, Path(tempfile.mkdtemp()))
    steps = min(steps or loop.steps, loop.steps)
    plan = epoch_plan(cfg, 0, loop.data.labels.shape[0], ctx)
    batches = []
    for s in range(steps):
        index, dy, dx, flips = (t[s * loop.batch : (s + 1) * loop.batch] for t in plan)
        x = crop_flip(loop.data.padded, index, dy, dx, flips, loop.data.size)
        batches.append((normalize(x, loop.data.mean, loop.data.std), loop.data.labels[index]))
    loader = textbook_loader(cfg)
    book_model = loop.arch.create()
    book_opt = sgd(book_model, cfg)
    next(iter(loader))  # start the persistent workers before any clock
    precisions = ["fp32"] + (["bf16"] if amp.cpu_has_native_bf16() else [])

    def variants() -> Iterator[tuple[str, Callable[[], None]]]:
        for p in precisions:
            yield (
                f"loop {p}",
                lambda p=p: (setattr(loop, "precision", p), loop_steps(loop, plan, steps)),
            )
            yield (
                f"bare {p}",
                lambda p=p: (setattr(loop, "precision", p), bare_steps(loop, batches)),
            )
        yield "textbook", lambda: textbook_steps(book_model, book_opt, iter(loader), steps)

    best: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        for name, fn in variants():
            seconds, load_avg = timed(fn)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, load_avg)
    loop.precision = "fp32"
    eval_s, eval_load = timed(loop.evaluate)
    images = steps * loop.batch
    rows = [(name, images / s, load_avg) for name, (s, load_avg) in best.items()]
    print(f"\n{steps} steps of {loop.batch} images, best of {rounds} interleaved rounds")
    print("| variant | images/s | vs bare step | load avg (1 min) |\n|---|---:|---:|---:|")
    for name, ips, load_avg in rows:
        bare = dict((n, i) for n, i, _ in rows).get("bare " + name.split()[-1])
        ratio = f"{ips / bare:.2f}" if bare and not name.startswith("bare") else "-"
        print(f"| {name} | {ips:,.0f} | {ratio} | {load_avg:.1f} |")
    n_test = len(loop.data.test_labels)
    print(
        f"test evaluation ({n_test} images, once per epoch): {eval_s:.2f} s, load {eval_load:.1f}"
    )
    return rows


def textbook_process(cfg: TrainConfig) -> None:
    """The textbook loop as its own process: --epochs epochs over the training split."""
    loader = textbook_loader(cfg)
    torch.manual_seed(0)
    from oodbench.models import create_model

    model = create_model("small_cnn", 10, 1)
    opt = sgd(model, cfg)
    for _ in range(cfg.epochs):
        textbook_steps(model, opt, iter(loader), len(loader))


def quiet_run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def whole_processes(subset: int | None, epochs: int, rounds: int) -> None:
    tail = ["--subset", str(subset)] if subset else []
    with tempfile.TemporaryDirectory() as runs:
        ours = [sys.executable, "-m", "oodbench", "train", "--epochs", str(epochs), "--device",
                "cpu", "--runs-dir", runs, "--name", "b", "--overwrite", "-q", *tail]  # fmt: skip
        book = [sys.executable, __file__, "--textbook-process", "--epochs", str(epochs), *tail]
        best: dict[str, tuple[float, float]] = {}
        for _ in range(rounds):
            for name, cmd in (("oodbench train", ours), ("textbook process", book)):
                seconds, load_avg = timed(lambda cmd=cmd: quiet_run(cmd))
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, load_avg)
    print(f"\nwhole process, {epochs} epochs, {subset or 'all'} images, best of {rounds}")
    print("| process | seconds | load avg (1 min) |\n|---|---:|---:|")
    for name, (s, load_avg) in best.items():
        print(f"| {name} | {s:.1f} | {load_avg:.1f} |")
    ratio = best["textbook process"][0] / best["oodbench train"][0]
    print(f"oodbench train is {ratio:.2f}x the textbook process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="5 rounds of 20 steps, 5,120-image processes"
    )
    parser.add_argument("--subset", type=int, default=None, help="train on N images only")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the whole processes")
    parser.add_argument("--no-process", action="store_true", help="skip the whole processes")
    parser.add_argument(
        "--process-rounds", type=int, default=None, help="rounds of whole processes (2; 1 --quick)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads in this process (1 is steadier on a busy machine)",
    )
    parser.add_argument("--textbook-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.subset, args.steps, args.rounds = args.subset or 5120, args.steps or 20, 5
    cfg = TrainConfig(epochs=args.epochs, subset=args.subset, device="cpu", crop_padding=2)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.textbook_process:
        return textbook_process(cfg)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, native bf16: {amp.cpu_has_native_bf16()}, "
          f"load avg at start {os.getloadavg()[0]:.1f}")  # fmt: skip
    in_process(cfg, args.rounds, args.steps)
    if not args.no_process:
        whole_processes(args.subset, args.epochs, args.process_rounds or (1 if args.quick else 2))


if __name__ == "__main__":
    main()
