"""Time ``score --detector all`` (minus detectors that rerun the network) from a warm cache.

Compares it with one extraction pass over the same data (cold cache) and with what one forward
pass per detector would cost (what a per-detector pipeline without a cache pays).

    .venv/bin/python benchmarks/score_throughput.py [--run-dir RUN] [--ood gaussian ...]
    /usr/bin/time -v .venv/bin/python benchmarks/score_throughput.py --rss-100k  # peak RSS

Without --run-dir a tiny small_cnn run (1 epoch, 512 images) is trained in a temp dir. No
covariate-shifted track (``shift=False``; benchmarks/shifted_build.py times it).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from oodbench import detectors
from oodbench.config import ScoreConfig, TrainConfig
from oodbench.scoring.run import score_run


def tiny_run(runs: Path) -> Path:
    from oodbench.train.loop import train

    cfg = TrainConfig(epochs=1, subset=512, val_size=500, device="cpu")
    return train(cfg, runs, name="bench-tiny", quiet=True)


def timed(cfg: ScoreConfig) -> float:
    start = time.perf_counter()
    score_run(cfg, quiet=True)
    return time.perf_counter() - start


def throughput(run: Path, ood: tuple[str, ...], batch_size: int) -> None:
    names = tuple(detectors.names(include_model=False))
    base = {
        "run_dir": str(run),
        "ood": ood,
        "device": "cpu",
        "batch_size": batch_size,
        "shift": False,
    }
    shutil.rmtree(run / "cache", ignore_errors=True)
    shutil.rmtree(run / "scores", ignore_errors=True)
    # Cold: extraction of ID test/val/train and each OOD set, plus msp (negligible scoring).
    cold = timed(ScoreConfig(detectors=("msp",), overwrite=True, **base))
    shutil.rmtree(run / "scores", ignore_errors=True)  # detectors recompute, outputs cached
    warm = timed(ScoreConfig(detectors=names, overwrite=True, **base))
    per_detector = len(names) * cold
    print(f"detectors: {len(names)} ({', '.join(names)}); OOD sets: {', '.join(ood)}")
    print(f"one extraction pass (cold cache, msp only): {cold:.1f} s")
    print(f"score --detector all from a warm cache:     {warm:.1f} s")
    print(f"one forward pass per detector (estimate {len(names)} x cold): {per_detector:.1f} s")
    print(f"speed-up of the cache over one pass per detector: {per_detector / warm:.1f}x")


def rss_100k(run: Path, batch_size: int) -> None:
    """Score a 100,000-image noise set: peak RSS should stay near one set's uint8 images."""
    from oodbench.data.registry import DatasetSpec, register
    from oodbench.data.sources.synthetic import generate

    register(DatasetSpec(
        name="uniform-100k", kind="synthetic", geometry="ID geometry", num_classes=0,
        source="uniform noise, 100,000 images (benchmark only)", splits=("test",),
        loader=lambda req: generate("uniform", tuple(req.geometry or (1, 28, 28)), 100_000),
        available=lambda root: True,
    ))  # fmt: skip
    cfg = ScoreConfig(run_dir=str(run), ood=("uniform-100k",), detectors=("energy", "knn"),
                      device="cpu", batch_size=batch_size, overwrite=True, shift=False)  # fmt: skip
    print(f"scored 100,000 OOD images in {timed(cfg):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path)
    parser.add_argument("--ood", nargs="+", default=["gaussian", "mnist-5k"])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--rss-100k", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run_dir or tiny_run(Path(tmp))
        if args.rss_100k:
            rss_100k(run, args.batch_size)
        else:
            throughput(run, tuple(args.ood), args.batch_size)


if __name__ == "__main__":
    main()
