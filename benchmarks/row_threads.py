"""Cost of the failure rows of ``oodbench score``: ``RowWriter`` with 1 and 2 row threads on
the same rows, and ``selective.rc_areas`` on one bootstrap chunk (docs/performance.md).

    python benchmarks/row_threads.py [--rows 6] [--n 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from oodbench.detectors.selective import rc_areas
from oodbench.scoring import rows
from oodbench.scoring.rowfiles import RUN_COLUMNS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.normal(size=args.n))
    correct = rng.random(args.n) < 0.9
    head = dict.fromkeys(RUN_COLUMNS, "x")
    for workers in (1, 2):
        rows.WORKERS = workers
        folder = Path(tempfile.mkdtemp())
        start = time.perf_counter()
        with rows.RowWriter(folder / "metrics.csv") as writer:
            for i in range(args.rows):
                row = head | {"detector": f"d{i}", "dataset": "t", "params": ""}
                writer.submit_failure(row, scores, correct, folder / "failure.csv")
            writer.rows()
        took = time.perf_counter() - start
        print(f"{workers} row thread(s): {took:.1f} s for {args.rows} failure rows of {args.n}")
    h_right = rng.integers(0, 3, size=(12, 2 * args.n)).astype(float)
    h_wrong = rng.integers(0, 2, size=(12, 2 * args.n)).astype(float)
    start = time.perf_counter()
    for _ in range(20):
        rc_areas(h_right, h_wrong)
    print(f"rc_areas: {time.perf_counter() - start:.2f} s for 20 calls on 12 x {2 * args.n}")


if __name__ == "__main__":
    main()
