"""How cost grows: training time against --subset, scoring time against the number of OOD
samples and against the number of detectors read from a warm cache. Prints markdown tables.

    .venv/bin/python benchmarks/scaling.py                # the docs/performance.md tables
    .venv/bin/python benchmarks/scaling.py --tiny         # seconds-long smoke run (tests)

Training: 1 epoch of small_cnn on the first N Fashion-MNIST training images (--val-size 0 so
60,000 fits), CPU. Scoring: the 5k-subset run; OOD sets of N uniform-noise images registered in
this process only (benchmark names), one detector (energy) so the cost is the extraction;
detectors: the first k registered detectors that read the cache (no odin), warm cache. No
covariate-shifted track (``shift=False``): its 60 corrupted ID sets would swamp the OOD cost
measured here (benchmarks/shifted_build.py times them).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from oodbench import detectors
from oodbench.config import ScoreConfig, TrainConfig
from oodbench.scoring.run import score_run


def train_row(runs: Path, subset: int) -> dict:
    from oodbench.train.loop import train

    cfg = TrainConfig(epochs=1, subset=subset, val_size=0, device="cpu")
    start = time.perf_counter()
    run = train(cfg, runs, name=f"scale-{subset}", quiet=True)
    wall = time.perf_counter() - start
    row = pd.read_csv(run / "history.csv").iloc[0]
    n_test = min(10_000, subset)
    return {"subset": subset, "train s": subset / row["images_per_s"],
            "img/s": row["images_per_s"], "epoch s (with test eval)": row["seconds"],
            "test images": n_test, "wall s (with startup)": wall}  # fmt: skip


def register_noise(n: int) -> str:
    from oodbench.data.registry import DATASETS, DatasetSpec, register
    from oodbench.data.sources.synthetic import generate

    name = f"scaling-uniform-{n}"
    if name not in DATASETS:
        register(DatasetSpec(
            name=name, kind="synthetic", geometry="ID geometry", num_classes=0,
            source=f"benchmark only: {n} uniform-noise images", splits=("test",),
            loader=lambda req: generate("uniform", tuple(req.geometry or (1, 28, 28)), n),
            available=lambda root: True,
        ))  # fmt: skip
    return name


def timed(cfg: ScoreConfig) -> float:
    start = time.perf_counter()
    score_run(cfg, quiet=True)
    return time.perf_counter() - start


def ood_row(run: Path, n: int, batch: int) -> dict:
    name = register_noise(n)
    cfg = ScoreConfig(run_dir=str(run), ood=(name,), detectors=("energy",), device="cpu",
                      batch_size=batch, overwrite=True, shift=False)  # fmt: skip
    timed(cfg)  # warms the ID caches and the data loading code
    (run / "cache" / f"{name}-test.safetensors").unlink()
    cold = timed(cfg)
    warm = timed(cfg)
    return {"OOD samples": n, "score s (extract + energy)": cold, "warm cache s": warm,
            "extracted img/s": n / max(cold - warm, 1e-9)}  # fmt: skip


def detector_row(run: Path, k: int, ood: str, batch: int) -> dict:
    names = tuple(detectors.names(include_model=False)[:k])
    cfg = ScoreConfig(run_dir=str(run), ood=(ood,), detectors=names, device="cpu",
                      batch_size=batch, overwrite=True, shift=False)  # fmt: skip
    timed(cfg)  # caches warm (and the fit split's outputs extracted once)
    shutil.rmtree(run / "scores", ignore_errors=True)
    seconds = timed(cfg)
    return {"detectors": k, "score s (warm cache)": seconds, "added": ", ".join(names)}


def markdown(rows: list[dict]) -> str:
    """A markdown table (pandas' to_markdown needs tabulate, which is not a dependency)."""
    cells = [[f"{v:,.2f}" if isinstance(v, float) else str(v) for v in r.values()] for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="smoke sizes (tests)")
    parser.add_argument("--batch-size", type=int, default=512, help="scoring batch size")
    args = parser.parse_args(argv)
    subsets = (256, 512) if args.tiny else (5_000, 10_000, 20_000, 40_000, 60_000)
    oods = (500, 1_000) if args.tiny else (2_500, 5_000, 10_000, 20_000, 40_000)
    n_all = len(detectors.names(include_model=False))
    counts = (1, 4) if args.tiny else tuple(sorted({1, 4, 8, n_all}))
    out = [f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU"]
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        train_rows = [train_row(runs, n) for n in subsets]
        out += ["", "Training, 1 epoch of small_cnn:", "", markdown(train_rows)]
        print("\n".join(out), flush=True)
        run = runs / f"scale-{subsets[0]}"
        ood_rows = [ood_row(run, n, args.batch_size) for n in oods]
        part = ["", "Scoring against OOD samples (energy):", "", markdown(ood_rows)]
        print("\n".join(part), flush=True)
        det_rows = [detector_row(run, k, register_noise(oods[0]), args.batch_size)
                    for k in counts]  # fmt: skip
        last = ["", f"Scoring against cached detectors ({oods[0]} OOD samples):", "",
                markdown(det_rows)]  # fmt: skip
        print("\n".join(last), flush=True)
    return "\n".join(out + part + last)


if __name__ == "__main__":
    main()
