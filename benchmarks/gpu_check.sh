#!/usr/bin/env bash
# GPU check, at most 8 minutes, no network: wrn_40_2 on CIFAR-shaped data (real CIFAR-10 if
# `oodbench datasets` lists it under --root, else 50,000 synthetic 3x32x32 images), the oodbench
# loop against the textbook loop (img/s, s/epoch, ratio), then extraction + score --detector all.
#
#   bash benchmarks/gpu_check.sh              # eager (bf16 autocast, channels_last)
#   bash benchmarks/gpu_check.sh --compile    # + torch.compile (its first epoch pays compile)
#   bash benchmarks/gpu_check.sh --tiny --no-shift   # CPU smoke test (tests/test_benchmarks.py)
#
# Targets on an H200 (issue 8): oodbench >= 3x the textbook loop; <= 3 s per 50k-image epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader || echo "nvidia-smi: not found (CPU run)"
export PYTHONUNBUFFERED=1
timeout --signal=INT --kill-after=20 "${GPU_CHECK_TIMEOUT:-470}" "$PY" benchmarks/gpu_check.py "$@"
