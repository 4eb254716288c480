#!/bin/bash
# Issue 24's first answer, "does LogitNorm mitigate overconfidence?": the flagship far-track
# recipe (small_cnn, Fashion-MNIST, 20,000 images, 30 epochs, seed 0) for every loss, scored
# with the overconfidence track (failure, calibration, shift, full-spectrum OOD), its tables
# committed under docs/study/overconfidence/ and rendered into docs/results.md. The shifted sets
# are the whole test split (--shift-size 0), as the committed tables were scored.
# Usage: scripts/overconfidence.sh OUT [PYTHON]   (resumable: rerun to finish)
set -euo pipefail
OUT=${1:?usage: scripts/overconfidence.sh OUT [PYTHON]}
PY=${2:-.venv/bin/python}
DOCS=docs/study/overconfidence
$PY -m oodbench bench --losses ce,logitnorm,elogitnorm,t2fnorm --tau 0.1 --seeds 0 \
  --subset 20000 --device cpu --epochs 30 --tracks far --shift-size 0 --out "$OUT" --resume
mkdir -p "$DOCS"
$PY -m oodbench report "$OUT" --format csv --out "$DOCS/far.csv"
$PY -m oodbench report "$OUT" --format markdown --out "$DOCS/far.md" --plots "$DOCS/far-plots"
$PY scripts/overconfidence_tables.py "$DOCS" docs/results.md
