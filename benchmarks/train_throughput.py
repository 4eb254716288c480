"""One epoch of small_cnn on Fashion-MNIST, two ways, in one run: oodbench's loop and the
textbook PyTorch loop (PIL images + torchvision transforms + DataLoader with 2 workers).

Same model, batch size, optimizer, loss and augmentation (random crop with padding 2 and
horizontal flip). Prints both images/s figures and the speedup, plus CPU time per image
(process + DataLoader workers), which stays meaningful on a machine shared with other jobs: there
the textbook loop's 3 processes simply take a larger share of the CPU than one process does.
oodbench's CPU figure is conservative: it also counts loading the data and the test evaluation.

    .venv/bin/python benchmarks/train_throughput.py            # full epoch (55,000 images)
    .venv/bin/python benchmarks/train_throughput.py --subset 5000
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import pandas as pd
import torch
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from oodbench.config import TrainConfig
from oodbench.data import load
from oodbench.models import create_model
from oodbench.train.loop import derive_seed, train, validation_split


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


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (DataLoader workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def textbook_epoch(cfg: TrainConfig) -> tuple[float, float]:
    train_set = load("fashion-mnist", "train")
    train_idx, _ = validation_split(cfg, train_set)
    data = PILDataset(
        train_set.images[train_idx],
        train_set.labels[train_idx],
        train_set.mean[0],
        train_set.std[0],
    )
    loader = DataLoader(
        data,
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=2,
        drop_last=True,
        persistent_workers=False,
    )
    torch.manual_seed(derive_seed(cfg.seed, "init"))
    model = create_model("small_cnn", 10, 1)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )
    seen, start, cpu = 0, time.perf_counter(), cpu_seconds()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
    wall = time.perf_counter() - start
    del loader  # joins the workers, so their CPU time is counted
    return seen / wall, (cpu_seconds() - cpu) / seen


def oodbench_epoch(cfg: TrainConfig) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as runs:
        cpu = cpu_seconds()
        run_dir = train(cfg, runs, name="bench", quiet=True)
        cpu = cpu_seconds() - cpu
        history = pd.read_csv(run_dir / "history.csv")
        n_train = json.loads((run_dir / "config.json").read_text())["n_train"]
        seen = n_train // cfg.batch_size * cfg.batch_size  # full batches only
        return float(history["images_per_s"].iloc[0]), cpu / max(seen, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=None, help="train on N images only")
    args = parser.parse_args()
    cfg = TrainConfig(epochs=1, subset=args.subset, device="cpu", crop_padding=2)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{'all' if args.subset is None else args.subset} training images, batch {cfg.batch_size}"
    )
    ours, ours_cpu = oodbench_epoch(cfg)
    print(
        f"oodbench loop (uint8 on device, batched crop/flip): {ours:8.0f} img/s  "
        f"{1000 * ours_cpu:6.2f} CPU-ms/img"
    )
    textbook, textbook_cpu = textbook_epoch(cfg)
    print(
        f"textbook loop (PIL + transforms + DataLoader x2):    {textbook:8.0f} img/s  "
        f"{1000 * textbook_cpu:6.2f} CPU-ms/img"
    )
    print(
        f"speedup: {ours / textbook:.2f}x in images/s, {textbook_cpu / ours_cpu:.2f}x in CPU "
        "time per image"
    )


if __name__ == "__main__":
    main()
