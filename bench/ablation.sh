#!/usr/bin/env bash
# The consistency ablation on the offline minilm recipe (issue: method fidelity).
# Trains minilm-animals with and without L_cst (same seed, same 1500 steps) and evaluates both with
# `distok eval` (text-side estimator) on the fixed 30-distribution set. ~5 minutes on 2 CPU cores.
# Writes bench/results/ablation-minilm.json; BENCHMARKS.md quotes it.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
distok train -r minilm-animals -o "$work/full" -q
distok train -r minilm-animals -o "$work/no-cst" --set train.consistency=false -q
full=$(distok eval "$work/full" --json -q)
nocst=$(distok eval "$work/no-cst" --json -q)
mkdir -p bench/results
printf '{"command": "bash bench/ablation.sh", "date": "%s", "full": %s, "without_consistency": %s}\n' \
  "$(date +%F)" "$full" "$nocst" > bench/results/ablation-minilm.json
cp "$work/full/eval-text/eval.md" bench/results/ablation-minilm-full.md
cp "$work/no-cst/eval-text/eval.md" bench/results/ablation-minilm-no-cst.md
cp "$work/full/eval-text/eval.png" bench/results/ablation-minilm-full.png
cat bench/results/ablation-minilm.json
rm -rf "$work"
