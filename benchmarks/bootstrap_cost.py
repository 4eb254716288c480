"""What the 95% bootstrap intervals cost: per metrics row, and inside ``score --detector all``.

    .venv/bin/python benchmarks/bootstrap_cost.py              # rows + a tiny run scored -d all
    .venv/bin/python benchmarks/bootstrap_cost.py --rows-only  # the per-row timings only

Kernels: numpy's and torch's cumulative sums on one chunk of resamples, and the paper
protocol's 10 draws through scikit-learn and through ``metrics.fast_metrics``.
Per row: the vectorised bootstrap (``metrics.bootstrap_intervals``, 1000 resamples) against the
same 1000 resamples through the scikit-learn metrics (measured on 50 and scaled), at the sizes
of the offline bench (10,000 ID scores; 2,000 OOD under the paper protocol, 5,000 under full).
End to end: a small_cnn trained 1 epoch on 256 images, scored with every detector on gaussian
and mnist-5k (paper protocol), with the time spent inside ``bootstrap_intervals`` counted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from oodbench import metrics


def per_row(n_id: int, n_ood: int, size: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    s_id, s_ood = rng.normal(1, 1, n_id), rng.normal(0, 1, n_ood)
    start = time.perf_counter()
    metrics.bootstrap_intervals(s_id, s_ood, ood_size=size, seed=1)
    fast = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(50):
        i, o = rng.integers(0, n_id, n_id), rng.integers(0, n_ood, size)
        metrics.ood_metrics(s_id[i], s_ood[o])
    slow = (time.perf_counter() - start) / 50 * metrics.N_BOOT
    return {"n_id": n_id, "n_ood": n_ood, "resample_ood": size, "vectorised_s": round(fast, 3),
            "sklearn_loop_s": round(slow, 2), "speedup": round(slow / fast, 1)}  # fmt: skip


def _best(fn: object, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def kernels(n: int = 12, u: int = 20_000) -> dict[str, float]:
    """The two choices in the row's inner loop, best of 5: the cumulative sum over a chunk of
    resamples (n x u float32, numpy against torch, which ``metrics`` uses), and the paper
    protocol's 10 draws (10,000 ID, 2,000 OOD) through scikit-learn against ``fast_metrics``."""
    import torch

    h = np.random.default_rng(0).poisson(1.0, (n, u)).astype(np.float32)
    rng = np.random.default_rng(1)
    s_id, s_ood = rng.normal(1, 1, 10_000), rng.normal(0, 1, 2_000)
    numpy_s, torch_s = _best(lambda: np.cumsum(h, axis=1)), _best(lambda: torch.cumsum(
        torch.from_numpy(h), 1))  # fmt: skip
    sk = _best(lambda: [metrics.ood_metrics(s_id, s_ood) for _ in range(10)], 3)
    fast = _best(lambda: [metrics.fast_metrics(s_id, s_ood) for _ in range(10)], 3)
    return {"cumsum_numpy_ms": round(1e3 * numpy_s, 2), "cumsum_torch_ms": round(1e3 * torch_s, 2),
            "cumsum_speedup": round(numpy_s / torch_s, 1), "draws_sklearn_s": round(sk, 3),
            "draws_fast_s": round(fast, 4), "draws_speedup": round(sk / fast, 1)}  # fmt: skip


def end_to_end() -> dict[str, float]:
    from oodbench.cli import main

    spent = [0.0, 0]
    inner = metrics.bootstrap_intervals

    def timed(*args: object, **kwargs: object) -> dict[str, tuple[float, float]]:
        start = time.perf_counter()
        out = inner(*args, **kwargs)  # type: ignore[arg-type]
        spent[0] += time.perf_counter() - start
        spent[1] += 1
        return out

    metrics.bootstrap_intervals = timed  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        args = ["--subset", "256", "--val-size", "64", "--device", "cpu", "-q"]
        assert main(["train", "--runs-dir", tmp, "--name", "r", "--epochs", "1", *args]) == 0
        start = time.perf_counter()
        argv = ["score", str(runs / "r"), "-d", "all", "--ood", "gaussian", "--ood", "mnist-5k"]
        assert main([*argv, "--protocol", "paper", "--device", "cpu", "-q"]) == 0
        total = time.perf_counter() - start
    return {"rows": spent[1], "score_s": round(total, 1), "bootstrap_s": round(spent[0], 1),
            "bootstrap_share": round(spent[0] / total, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-only", action="store_true")
    args = parser.parse_args()
    out: dict[str, object] = {"kernels": kernels()}
    out["per_row"] = [per_row(10_000, 2_000, 2_000), per_row(10_000, 5_000, 5_000)]
    if not args.rows_only:
        out["score_all"] = end_to_end()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
