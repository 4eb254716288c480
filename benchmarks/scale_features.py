"""Time and peak memory of the feature detectors as the training rows grow to ImageNet size.

Synthetic class-clustered ReLU features (``--classes`` x ``--dim``, 1,000 x 2,048 by default,
like a ResNet-50 on ImageNet-1k) are written once per size as fp16 (or bf16) files and
memory-mapped, never loaded: the detectors see a torch view of the mapped file, as a user's
memory-mapped cache would be. Each (size, detector) is fitted and scored in a fresh process,
which reports its fit and score seconds and its peak resident memory (``ru_maxrss``, which
counts the mapped pages it touched); the CSV gets one row each, and ``--plot`` draws them.

    .venv/bin/python benchmarks/scale_features.py --sizes 50000,100000 --out scale.csv
    .venv/bin/python benchmarks/scale_features.py --plot scale.csv docs/img/scale.png

Sizes: 50,000 up to 1,281,167 (ImageNet-1k's training rows). The score set is ``--score``
rows (default 2,000) drawn the same way, with OOD rows at three times the noise.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

DETECTORS = ("mahalanobis", "rmd", "vim", "knn", "gmm")
SIZES = (50_000, 100_000, 200_000, 400_000, 800_000, 1_281_167)
FIELDS = ("rows", "dim", "classes", "dtype", "detector", "stored_gib", "fit_s", "score_s",
          "baseline_gib", "peak_gib", "peak_over_stored", "status", "load")  # fmt: skip


def _path(folder: Path, rows: int, args: argparse.Namespace, what: str) -> Path:
    return folder / f"{what}-{rows}x{args.dim}x{args.classes}-{args.dtype}.bin"


def _write(path: Path, rows: int, width: int, draw, args: argparse.Namespace) -> None:
    """Write a rows x width matrix of half floats in chunks (never whole in memory)."""
    if path.is_file() and path.stat().st_size == rows * width * 2:
        return
    tmp = path.with_suffix(".tmp")
    out = np.memmap(tmp, dtype=np.uint16, mode="w+", shape=(rows, width))
    step = max(1, 2**24 // width)
    for i in range(0, rows, step):
        block = draw(i, min(rows, i + step))
        half = block.to(torch.bfloat16 if args.dtype == "bf16" else torch.float16)
        out[i : i + len(block)] = half.view(torch.int16).numpy().view(np.uint16)
    out.flush()
    del out
    tmp.rename(path)


def _mapped(path: Path, rows: int, width: int, dtype: str) -> torch.Tensor:
    raw = np.memmap(path, dtype=np.int16, mode="r", shape=(rows, width))
    return torch.from_numpy(raw).view(torch.bfloat16 if dtype == "bf16" else torch.float16)


class Synthetic:
    """Class centres, a linear head and a per-row generator: row i is the same at every size."""

    def __init__(self, args: argparse.Namespace) -> None:
        g = torch.Generator().manual_seed(0)
        c, d = args.classes, args.dim
        self.centres = torch.randn(c, d, generator=g)
        self.weight = torch.randn(c, d, generator=g) / d**0.5
        self.bias = torch.randn(c, generator=g) * 0.1
        self.c, self.d = c, d

    def features(self, start: int, stop: int, noise: float = 1.0, seed: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 1_000_003 + start)
        y = torch.arange(start, stop) % self.c
        return (self.centres[y] + noise * torch.randn(stop - start, self.d, generator=g)).relu()

    def labels(self, rows: int) -> torch.Tensor:
        return torch.arange(rows) % self.c


def prepare(rows: int, args: argparse.Namespace) -> None:
    syn, folder = Synthetic(args), Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    _write(_path(folder, rows, args, "features"), rows, args.dim, syn.features, args)
    head = syn.weight.T

    def logits(i: int, j: int) -> torch.Tensor:
        return syn.features(i, j) @ head + syn.bias

    _write(_path(folder, rows, args, "logits"), rows, args.classes, logits, args)


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def child(rows: int, name: str, args: argparse.Namespace) -> dict[str, object]:
    """Fit and score one detector on the mapped files; runs in its own process."""
    from oodbench import detectors
    from oodbench.detectors import streaming
    from oodbench.errors import UserError
    from oodbench.models.outputs import Outputs

    if args.stream_above is not None:  # stream smaller matrices too (a reduced-size sweep)
        streaming.STREAM_ELEMENTS = args.stream_above

    syn, folder = Synthetic(args), Path(args.dir)
    feats = _mapped(_path(folder, rows, args, "features"), rows, args.dim, args.dtype)
    logits = _mapped(_path(folder, rows, args, "logits"), rows, args.classes, args.dtype)
    train = Outputs(logits, feats, syn.labels(rows), syn.weight, syn.bias)
    half = args.score // 2
    h = torch.cat([syn.features(0, half, seed=2), syn.features(0, args.score - half, 3.0, 3)])
    test = Outputs(h @ syn.weight.T + syn.bias, h, torch.full((len(h),), -1), syn.weight,
                   syn.bias)  # fmt: skip
    baseline = _rss()  # resident now; the peak so far may be a transient of the imports
    det = detectors.create(name)
    status, fit_s, score_s = "ok", float("nan"), float("nan")
    try:
        start = time.perf_counter()
        det.fit(train)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        det.score(test)
        score_s = time.perf_counter() - start
    except UserError as exc:
        status = f"error: {exc}"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    stored = feats.numel() * 2 + (logits.numel() * 2 if name == "vim" else 0)
    return {"rows": rows, "dim": args.dim, "classes": args.classes, "dtype": args.dtype,
            "detector": name, "stored_gib": stored / 2**30, "fit_s": fit_s, "score_s": score_s,
            "baseline_gib": baseline / 2**30, "peak_gib": peak / 2**30,
            "peak_over_stored": (peak - baseline) / stored, "status": status,
            "load": os.getloadavg()[0]}  # fmt: skip


def plot(csv_path: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(csv_path.open()))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for name in DETECTORS:
        mine = [r for r in rows if r["detector"] == name and r["status"] == "ok"]
        if not mine:
            continue
        n = [int(r["rows"]) for r in mine]
        ax_t.plot(n, [float(r["fit_s"]) + float(r["score_s"]) for r in mine], "o-", label=name)
        ax_m.plot(n, [float(r["peak_gib"]) for r in mine], "o-", label=name)
    stored = sorted({(int(r["rows"]), float(r["stored_gib"])) for r in rows
                     if r["detector"] != "vim"})  # fmt: skip
    ax_m.plot([s[0] for s in stored], [s[1] for s in stored], "k--", label="stored features")
    ax_t.set(xlabel="training rows", ylabel="fit + score seconds", title="time")
    ax_m.set(xlabel="training rows", ylabel="peak RSS (GiB)", title="peak memory")
    for ax in (ax_t, ax_m):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    first = rows[0]
    fig.suptitle(f"{first['classes']} classes x {first['dim']} dims, {first['dtype']}, "
                 "memory-mapped")  # fmt: skip
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--dtype", choices=("fp16", "bf16"), default="fp16")
    parser.add_argument("--score", type=int, default=2000, help="rows scored")
    parser.add_argument("--dir", default="/tmp/oodbench-scale", help="where the files go")
    parser.add_argument("--out", type=Path, default=Path("scale.csv"))
    parser.add_argument(
        "--stream-above",
        type=int,
        default=None,
        help="stream matrices above this many elements (default: oodbench's 2^26)",
    )
    parser.add_argument("--plot", nargs=2, type=Path, metavar=("CSV", "PNG"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plot:
        return plot(*args.plot)
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], args)))
        return None
    new = not args.out.is_file()
    with args.out.open("a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if new:
            writer.writeheader()
        for rows in map(int, args.sizes.split(",")):
            prepare(rows, args)
            for name in args.detectors.split(","):
                cmd = [sys.executable, __file__, "--child", str(rows), name, *sys.argv[1:]]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode:
                    tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
                    result = {"rows": rows, "detector": name, "status": f"crash: {tail[0]}"}
                else:
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                writer.writerow({k: result.get(k, "") for k in FIELDS})
                f.flush()
                print(json.dumps(result), flush=True)
    return None


if __name__ == "__main__":
    main()
