"""What the covariate-shifted track costs to build: every corruption at every severity of an ID
set's test split, loaded through the registry from an empty cache, then again from the cache.

    .venv/bin/python benchmarks/shifted_build.py                    # fashion-mnist (10,000)
    .venv/bin/python benchmarks/shifted_build.py --id cifar10
    .venv/bin/python benchmarks/shifted_build.py --limit 500        # 500 images, no cache

The cache is a fresh temporary folder (``OODBENCH_CACHE`` is set before oodbench is imported),
so the ID set is decoded once and each shifted set is built once. ``--limit N`` times
``corruptions.corrupt`` on the first N images, without the registry or the cache.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def build_times(id_name: str, limit: int | None = None) -> dict[str, float]:
    """Seconds per corruption (its 5 severities) to build the shifted sets of ``id_name``."""
    from oodbench.data import DATASETS, load, shifted_sets
    from oodbench.data.corruptions import corrupt

    base = load(id_name, "test").images[:limit] if limit else None
    times: dict[str, float] = {}
    for name in shifted_sets(id_name):
        spec = DATASETS.get(name)
        assert spec.corruption is not None and spec.severity is not None
        start = time.perf_counter()
        if base is not None:
            corrupt(base, spec.corruption, spec.severity)
        else:
            load(name, "test")
        times[spec.corruption] = times.get(spec.corruption, 0.0) + time.perf_counter() - start
    return times


def cached_time(id_name: str) -> float:
    from oodbench.data import load, shifted_sets

    start = time.perf_counter()
    for name in shifted_sets(id_name):
        load(name, "test")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--id", default="fashion-mnist", help="the ID set")
    parser.add_argument("--limit", type=int, default=None, help="time N images, no cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["OODBENCH_CACHE"] = cache
        from oodbench.data import load

        n = len(load(args.id, "test")) if args.limit is None else args.limit
        load_start = os.getloadavg()[0]
        start = time.perf_counter()
        times = build_times(args.id, args.limit)
        total = time.perf_counter() - start
        for name, seconds in times.items():
            print(f"{name:18s} {seconds:7.1f} s  (5 severities, {5 * n / seconds:,.0f} images/s)")
        print(f"all {len(times)} corruptions x 5 severities of {args.id} ({n:,} images): "
              f"{total:.1f} s; load avg {load_start:.1f} at start, "
              f"{os.getloadavg()[0]:.1f} at end, {os.cpu_count()} CPUs")  # fmt: skip
        if args.limit is None:
            print(f"again, from the cache: {cached_time(args.id):.1f} s")


if __name__ == "__main__":
    main()
