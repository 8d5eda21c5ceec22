#!/usr/bin/env bash
# Reproduces the zoo's digits weights (gdas_digits, gdas_frc_digits): small networks (C=8, 8 cells)
# trained on the built-in digits set, on CPU, both at once; their final epoch is what is shipped.
#
#   scripts/train_digits_zoo.sh [RUNS_DIR]      (about 25 minutes on two shared CPU cores)
#
# Then `python scripts/export_digits_zoo.py RUNS_DIR` writes zoo/weights/ and the zoo entries.
set -euo pipefail
runs="${1:-runs/zoo-digits}"
mkdir -p "$runs"
for genotype in gdas gdas_frc; do
  OMP_NUM_THREADS=1 gdas train digits --genotype "$genotype" \
    --channels 8 --layers 8 --epochs 15 --batch-size 64 --lr 0.05 --lr-min 1e-4 --drop-path 0.1 \
    --seed 0 --device cpu --quiet --run-dir "$runs/$genotype" &
done
wait
