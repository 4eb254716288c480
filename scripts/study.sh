#!/bin/bash
# The flagship study of docs/results.md, stage by stage; every stage resumes (rerun to finish).
# Usage: scripts/study.sh OUT [PYTHON]   (about 2 hours on 2 CPU cores)
#   1. tau sweep, seed 0, SWEEP_EPOCHS (15): tau chosen on validation data only
#      (oodbench/bench/tausweep.py)
#   2. losses x 3 seeds x both tracks (far, near) at EPOCHS (30), every detector tuned on
#      validation data (the --val-ood default, real held-out images)
#   3. the same runs scored again with the papers' detector defaults (--no-tune)
#   4. convergence check: CE and LogitNorm, seed 0, twice the epochs
#   5. CE and LogitNorm runs re-tuned on noise only and on noise+real (copies of the far runs,
#      tunable detectors only): which validation data is the better proxy
set -euo pipefail
OUT=${1:?usage: scripts/study.sh OUT [PYTHON]}
PY=${2:-.venv/bin/python}
OOD="$PY -m oodbench"
EPOCHS=${EPOCHS:-30}
SWEEP_EPOCHS=${SWEEP_EPOCHS:-15}
DATA=(--subset 20000 --device cpu)
LOSSES=ce,logitnorm,elogitnorm,t2fnorm
TUNABLE=(-d energy -d gen -d knn -d vim -d react -d ash-s -d ash-b -d ash-p -d dice -d odin
         -d dml -d scale -d nnguide -d fdbd -d vra -d relation -d neco -d nci)
mkdir -p "$OUT"

$OOD bench --tau-sweep 0.01,0.04,0.1,0.5,1.0 -d msp -d energy "${DATA[@]}" --epochs "$SWEEP_EPOCHS" \
  --out "$OUT/tau" --resume
TAU=$($PY -c "import pandas as pd, sys; t = pd.read_csv(sys.argv[1]); print(t.loc[t.selected, 'tau'].iloc[0])" "$OUT/tau/tau_sweep.csv")
echo "study: tau chosen on validation data: $TAU"

MAIN=(--losses $LOSSES --tau "$TAU" --seeds 0,1,2 "${DATA[@]}" --epochs "$EPOCHS"
      --tracks far,near --out "$OUT/main" --resume)
$OOD bench "${MAIN[@]}"
$OOD bench "${MAIN[@]}" --no-tune

$OOD bench --losses ce,logitnorm --tau "$TAU" "${DATA[@]}" --epochs $((2 * EPOCHS)) \
  -d msp -d energy --out "$OUT/converge" --resume

for proxy in noise noise+real; do
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

echo "study: done"
