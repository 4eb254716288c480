"""WRN-40-2 training step on the colour setting's geometry (3x32x32, batch 128), every variant
in ONE process, interleaved (A B C D, A B C D, ...), best of N rounds, images/s.

Variants: fp32 eager (NCHW, the CPU default), fp32 channels-last, bf16 autocast, and bf16
autocast channels-last (what ``--precision bf16`` trains with since issue 27). The bf16 ones
run only where bf16 is native (AMX, AVX512-BF16, CUDA) unless ``--force-bf16``: elsewhere
torch emulates it far slower than fp32, which is no measurement of anything.

    .venv/bin/python benchmarks/wrn_step.py --steps 3 --rounds 3 --threads 1
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.nn import functional as F

from oodbench.models import create_model
from oodbench.models import precision as amp


def step_fn(bf16: bool, nhwc: bool, batch: int, device: torch.device):  # noqa: ANN201
    torch.manual_seed(0)
    model = create_model("wrn_40_2", 10, 3, img_size=32).to(device).train()
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        with amp.autocast("bf16" if bf16 else "fp32", device):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--force-bf16", action="store_true", help="bf16 even if emulated")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    native = device.type == "cuda" or amp.cpu_has_native_bf16()
    variants = [("fp32 eager (NCHW)", False, False), ("fp32 channels-last", False, True)]
    if native or args.force_bf16:
        variants += [("bf16 autocast (NCHW)", True, False), ("bf16 channels-last", True, True)]
    steps = {name: step_fn(bf16, nhwc, args.batch, device) for name, bf16, nhwc in variants}
    for fn in steps.values():  # warm-up: oneDNN picks and caches its kernels
        fn()
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, fn in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.steps):
                fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            rate = args.steps * args.batch / (time.perf_counter() - start)
            if rate > best.get(name, (0.0, 0.0))[0]:
                best[name] = (rate, os.getloadavg()[0])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {native}")
    print("| variant (WRN-40-2, 3x32x32) | images/s | vs fp32 eager | load |")
    print("|---|---:|---:|---:|")
    base = best["fp32 eager (NCHW)"][0]
    for name, (rate, load) in best.items():
        print(f"| {name} | {rate:.1f} | {rate / base:.2f}x | {load:.1f} |")


if __name__ == "__main__":
    main()
