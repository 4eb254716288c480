"""GPU check: wrn_40_2 on CIFAR-shaped data, oodbench's loop against the textbook loop, then
extraction and ``score --detector all``. Needs no network.

The data are the real CIFAR-10 when ``oodbench datasets`` lists it as available (``--root``),
else 50,000 synthetic 3 x 32 x 32 uint8 images (a class-dependent tint on noise, so the loss
moves). The synthetic set is registered in this process only, under a benchmark-only name;
no user-facing dataset is faked.

    .venv/bin/python benchmarks/gpu_check.py                     # the full check (GPU)
    .venv/bin/python benchmarks/gpu_check.py --compile           # + torch.compile
    .venv/bin/python benchmarks/gpu_check.py --tiny --no-shift   # CPU smoke (seconds)

Both loops use the same model, batch size (128), SGD settings and augmentation (random crop,
padding 4, horizontal flip). oodbench: uint8 data resident on the device, batched crop/flip,
bf16 autocast and channels_last on CUDA, metrics summed on the device. Textbook: PIL images,
torchvision transforms per sample, DataLoader workers, pinned memory, fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

SYNTHETIC = "gpu-check-cifar-shaped"  # registered in this process only
NOISE = "gpu-check-noise"


def synthetic_cifar(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n x 3 x 32 x 32 uint8 noise with a per-class tint; labels 0..9."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    tint = torch.randint(-60, 61, (10, 3, 1, 1), generator=torch.Generator().manual_seed(1))
    noise = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.int16)
    return (noise // 2 + 64 + tint[labels]).clamp(0, 255).to(torch.uint8), labels


def register_synthetic(n_train: int, n_test: int) -> None:
    """The CIFAR-shaped ID set and a noise OOD set of n_test images, for this process only."""
    from oodbench.data.imageset import ImageSet
    from oodbench.data.registry import DatasetSpec, register
    from oodbench.data.sources.synthetic import generate

    def load_id(req: object) -> ImageSet:
        train = getattr(req, "split", "test") == "train"
        images, labels = synthetic_cifar(n_train if train else n_test, 0 if train else 1)
        return ImageSet(images=images, labels=labels, name=SYNTHETIC, num_classes=10,
                        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))  # fmt: skip

    def load_noise(req: object) -> ImageSet:
        geometry = tuple(getattr(req, "geometry", None) or (3, 32, 32))
        return generate("gaussian", geometry, n_test)  # type: ignore[arg-type]

    register(DatasetSpec(
        name=SYNTHETIC, kind="synthetic", geometry="3x32x32", num_classes=10,
        source="benchmark only: CIFAR-shaped noise", splits=("train", "test"),
        loader=load_id, available=lambda root: True, role="id",
    ))  # fmt: skip
    register(DatasetSpec(
        name=NOISE, kind="synthetic", geometry="ID geometry", num_classes=0,
        source="benchmark only: gaussian noise", splits=("test",),
        loader=load_noise, available=lambda root: True,
    ))  # fmt: skip


def pick_dataset(args: argparse.Namespace) -> str:
    from oodbench.data import DATASETS

    if not args.tiny and DATASETS.get("cifar10").available(args.root):
        return "cifar10"
    n_train, n_test = (512, 256) if args.tiny else (args.images, 10_000)
    register_synthetic(n_train, n_test)
    return SYNTHETIC


def oodbench_loop(
    args: argparse.Namespace, dataset: str, runs: Path, precision: str = "auto",
    loss: str = "ce", epochs: int | None = None,
) -> tuple[Path, dict]:  # fmt: skip
    from oodbench.config import TrainConfig
    from oodbench.train.loop import train

    cfg = TrainConfig(dataset=dataset, model=args.model, epochs=epochs or args.epochs,
                      batch_size=128, val_size=args.val_size, crop_padding=4, device=args.device,
                      compile=args.compile, root=args.root, precision=precision,
                      loss=loss)  # fmt: skip
    start = time.perf_counter()
    run = train(cfg, runs, name=f"gpu-check-{loss}-{precision}", quiet=True)
    total = time.perf_counter() - start
    history = pd.read_csv(run / "history.csv")
    last = history.iloc[-1]
    n = int(json.loads((run / "config.json").read_text())["n_train"])
    return run, {
        "img_s": float(last["images_per_s"]),
        "train_s": n / float(last["images_per_s"]),
        "epoch_s": float(last["seconds"]),
        "first_epoch_s": float(history.iloc[0]["seconds"]),
        "total_s": total,
        "test_acc": float(last["test_acc"]),
    }


def textbook_loop(args: argparse.Namespace, dataset: str, device: torch.device) -> dict:
    """The usual tutorial loop: PIL + transforms per sample in DataLoader workers, fp32."""
    from PIL import Image
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from oodbench.data import load
    from oodbench.models import create_model

    data = load(dataset, "train", root=args.root)
    images = data.images[args.val_size :] if args.val_size else data.images
    labels = data.labels[args.val_size :] if args.val_size else data.labels
    tf = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(data.mean, data.std),
    ])  # fmt: skip

    class PILSet(Dataset):
        def __init__(self) -> None:
            self.pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images]
            self.labels = labels.tolist()

        def __len__(self) -> int:
            return len(self.pil)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return tf(self.pil[i]), self.labels[i]

    loader = DataLoader(PILSet(), batch_size=128, shuffle=True, drop_last=True,
                        num_workers=args.workers, pin_memory=device.type == "cuda",
                        persistent_workers=args.workers > 0)  # fmt: skip
    torch.manual_seed(0)
    model = create_model(args.model, 10, 3).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)  # fmt: skip
    result = {}
    for _ in range(args.textbook_epochs):
        seen, start = 0, time.perf_counter()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        result = {"img_s": seen / seconds, "train_s": seconds}
    return result


def time_scoring(args: argparse.Namespace, run: Path, dataset: str) -> dict:
    from oodbench.config import ScoreConfig
    from oodbench.scoring.run import score_run

    base = {"run_dir": str(run), "ood": (NOISE,) if dataset == SYNTHETIC else ("gaussian",),
            "device": args.device, "batch_size": args.score_batch, "overwrite": True,
            "root": args.root, "shift": not args.no_shift}  # fmt: skip
    shutil.rmtree(run / "cache", ignore_errors=True)
    shutil.rmtree(run / "scores", ignore_errors=True)
    start = time.perf_counter()
    score_run(ScoreConfig(detectors=("msp",), **base), quiet=True)
    cold = time.perf_counter() - start  # extraction of ID test (+ val) and the OOD set
    start = time.perf_counter()
    table = score_run(ScoreConfig(detectors=("all",), **base), quiet=True)
    first_all = time.perf_counter() - start  # + the fit split's extraction, every detector
    shutil.rmtree(run / "scores", ignore_errors=True)
    start = time.perf_counter()
    score_run(ScoreConfig(detectors=("all",), **base), quiet=True)
    warm = time.perf_counter() - start  # every detector from the warm cache
    return {"cold_msp_s": cold, "all_first_s": first_all, "all_warm_s": warm,
            "rows": len(table)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU smoke: 512 images, small_cnn")
    parser.add_argument("--model", default=None, help="default wrn_40_2 (small_cnn with --tiny)")
    parser.add_argument("--images", type=int, default=50_000, help="synthetic training images")
    parser.add_argument("--epochs", type=int, default=2, help="oodbench epochs (last is timed)")
    parser.add_argument("--textbook-epochs", type=int, default=1)
    parser.add_argument("--val-size", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--compile", action="store_true", help="torch.compile the oodbench model")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--score-batch", type=int, default=1024)
    parser.add_argument("--root", default=None, help="folder with real CIFAR-10, if any")
    parser.add_argument("--skip-textbook", action="store_true")
    parser.add_argument(
        "--no-shift",
        action="store_true",
        help="score without the covariate-shifted track (60 corrupted ID sets)",
    )
    parser.add_argument(
        "--precisions",
        default="auto,fp32",
        help="oodbench loops to time; the first is compared with the textbook; "
        "auto = bf16 on CUDA (bf16 is skipped on a CPU without native bf16)",
    )
    parser.add_argument(
        "--losses",
        default="logitnorm,logit-penalty,t2fnorm,elogitnorm",
        help="more losses after CE (default: the four normalising ones): 1 epoch each, then "
        "score --detector all",
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.epochs, args.textbook_epochs, args.workers = 1, 1, min(args.workers, 2)
    args.model = args.model or ("small_cnn" if args.tiny else "wrn_40_2")
    from oodbench.parallel import resolve_device

    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    dataset = pick_dataset(args)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  torch {torch.__version__}  device {name}  "
          f"data {dataset}  model {args.model}  compile {args.compile}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        run, ours = oodbench_loop(args, dataset, Path(tmp), args.precisions.split(",")[0])
        print(f"oodbench loop: {ours['img_s']:9.0f} img/s  {ours['train_s']:7.2f} s/epoch "
              f"(train; {ours['epoch_s']:.2f} s with test eval; first epoch "
              f"{ours['first_epoch_s']:.2f} s; test acc {ours['test_acc']:.1f}%)",
              flush=True)  # fmt: skip
        result = {"device": name, "dataset": dataset, "oodbench": ours}
        result |= other_precisions(args, dataset, Path(tmp), device)
        if not args.skip_textbook:
            book = textbook_loop(args, dataset, device)
            result["textbook"] = book
            print(f"textbook loop: {book['img_s']:9.0f} img/s  {book['train_s']:7.2f} s/epoch "
                  f"(PIL + transforms, {args.workers} workers)", flush=True)  # fmt: skip
            result["ratio"] = ours["img_s"] / book["img_s"]
            print(f"ratio oodbench / textbook: {result['ratio']:.2f}x", flush=True)
        scoring = time_scoring(args, run, dataset)
        result["scoring"] = scoring
        print(f"score, cold cache (extraction + msp): {scoring['cold_msp_s']:.2f} s; "
              f"--detector all, first: {scoring['all_first_s']:.2f} s; "
              f"--detector all, warm cache: {scoring['all_warm_s']:.2f} s "
              f"({scoring['rows']} rows)", flush=True)  # fmt: skip
        result["losses"] = other_losses(args, dataset, Path(tmp))
    return result


def other_precisions(args: argparse.Namespace, dataset: str, runs: Path,
                     device: torch.device) -> dict:  # fmt: skip
    """The oodbench loop again in every other --precisions value (bf16 where it is native)."""
    from oodbench.errors import UserError
    from oodbench.models import precision as amp

    first = amp.resolve(args.precisions.split(",")[0], device)
    out = {}
    for p in args.precisions.split(",")[1:]:
        try:
            resolved = amp.resolve(p, device)
        except UserError as exc:
            print(f"oodbench loop, precision {p}: skipped ({exc})", flush=True)
            continue
        if resolved == first:
            continue
        _, row = oodbench_loop(args, dataset, runs, precision=resolved)
        out[f"oodbench_{resolved}"] = row
        print(f"oodbench loop, precision {resolved}: {row['img_s']:9.0f} img/s  "
              f"{row['train_s']:7.2f} s/epoch (test acc {row['test_acc']:.1f}%)",
              flush=True)  # fmt: skip
    return out


def other_losses(args: argparse.Namespace, dataset: str, runs: Path) -> dict:
    """The three-loss path: each other loss trained 1 epoch, then scored with every detector."""
    from oodbench.config import ScoreConfig
    from oodbench.scoring.run import score_run

    out = {}
    for loss in [x for x in args.losses.split(",") if x]:
        start = time.perf_counter()
        run, row = oodbench_loop(args, dataset, runs, loss=loss, epochs=1)
        trained = time.perf_counter() - start
        ood = (NOISE,) if dataset == SYNTHETIC else ("gaussian",)
        score_cfg = ScoreConfig(run_dir=str(run), detectors=("all",), ood=ood, device=args.device,
                                batch_size=args.score_batch, root=args.root,
                                shift=not args.no_shift)  # fmt: skip
        start = time.perf_counter()
        rows = len(score_run(score_cfg, quiet=True))
        scored = time.perf_counter() - start
        out[loss] = {"train_s": trained, "score_s": scored, "rows": rows, **row}
        print(f"loss {loss}: {row['train_s']:.2f} s/epoch ({row['img_s']:.0f} img/s; the "
              f"1-epoch run took {trained:.2f} s), "
              f"score --detector all {scored:.2f} s ({rows} rows)", flush=True)  # fmt: skip
    return out


if __name__ == "__main__":
    main()
