#!/bin/bash
# The flagship study of docs/results.md, stage by stage; every stage resumes (rerun to finish).
# Usage: scripts/study.sh OUT [PYTHON]   (about 2 hours on 2 CPU cores)
#   1. tau sweep, seed 0: tau chosen on validation data only (oodbench/bench/tausweep.py)
#   2. losses x 3 seeds, far-OOD track, every detector tuned on validation data (noise+real)
#   3. the same runs scored again with the papers' detector defaults (--no-tune)
#   4. CE and LogitNorm runs re-tuned on noise only and on real images only (copies of the
#      runs, tunable detectors only): which validation data is the better proxy
#   5. near-OOD track, tuned and untuned
#   6. convergence check: CE and LogitNorm, seed 0, twice the epochs
set -euo pipefail
OUT=${1:?usage: scripts/study.sh OUT [PYTHON]}
PY=${2:-.venv/bin/python}
OOD="$PY -m oodbench"
RECIPE=(--subset 20000 --epochs 15 --device cpu)
LOSSES=ce,logitnorm,elogitnorm,t2fnorm
TUNABLE=(-d energy -d gen -d knn -d vim -d react -d ash-s -d ash-b -d ash-p -d dice -d odin
         -d dml -d scale -d nnguide -d fdbd -d vra -d relation -d neco -d nci)
mkdir -p "$OUT"

$OOD bench --tau-sweep 0.01,0.04,0.1,0.5,1.0 -d msp -d energy "${RECIPE[@]}" --out "$OUT/tau" --resume
TAU=$($PY -c "import pandas as pd, sys; t = pd.read_csv(sys.argv[1]); print(t.loc[t.selected, 'tau'].iloc[0])" "$OUT/tau/tau_sweep.csv")
echo "study: tau chosen on validation data: $TAU"

MAIN=(--losses $LOSSES --tau "$TAU" --seeds 0,1,2 "${RECIPE[@]}" --out "$OUT/main")
$OOD bench "${MAIN[@]}" --tracks far --out "$OUT/main/far" --resume
$OOD bench "${MAIN[@]}" --tracks far --out "$OUT/main/far" --resume --no-tune

for proxy in noise real; do
  for seed in 0 1 2; do
    for loss in ce logitnorm; do
      src="$OUT/main/far/seed$seed/$loss" dst="$OUT/proxy-$proxy/seed$seed/$loss"
      if [ ! -f "$dst/summary.json" ] || ! grep -q '"tuned"' "$dst/summary.json"; then
        mkdir -p "$dst" && cp -r "$src"/{config.json,model.safetensors,history.csv,cache} "$dst"/
        $OOD score "$dst" "${TUNABLE[@]}" --tune --val-ood "$proxy" --protocol paper --quiet
      fi
    done
  done
done

$OOD bench "${MAIN[@]}" --tracks far,near --resume
$OOD bench "${MAIN[@]}" --tracks far,near --resume --no-tune

$OOD bench --losses ce,logitnorm --tau "$TAU" --subset 20000 --epochs 30 --device cpu \
  -d msp -d energy --out "$OUT/converge" --resume
echo "study: done"
