#!/usr/bin/env bash
# The paper's protocol with the real weights (issue: method fidelity, real-weight kit), in one command:
#   bash bench/reproduce_paper.sh            # on a GPU with the models in the Hugging Face cache
# 1. trains kandinsky21-animals for 20K steps: the paper's objective, full and without L_cst (the paper's
#    ablation: train.objective=paper, train.residual=false, train.fusion_input=sum), and distok's default;
# 2. evaluates both with BLIP-VQA on renders ("What animal is in the photo?", the paper's question),
#    `estimator.images` renders per distribution, T by the calibration rule, beside the raw-mix baseline;
# 3. writes table.md in the paper's layout beside the paper's numbers (0.0602 / 0.0732) and eval JSONs.
# The eval here is the paper's (the training prompt); `distok eval RUN` adds the held-out styles.
# Expected time on one H100 (from ../shared/notes/gpu-anchors.md, eager): 2 × 20K training steps with
# BLIP-ITM estimation every 50 steps ≈ 2 × (6.95 min text steps + 400 × 8 renders × 0.14 s + BLIP) ≈ 2 × 15 min;
# eval: 2 × (60 + 2 × 30) tokens × 4 renders ≈ 960 renders × 0.14 s + VQA ≈ 3 min. About 50 minutes in all (three arms).
# Environment: RECIPE, STEPS, VQA (the BLIP-VQA checkpoint), DEVICE, OUT, EXTRA (more --set overrides,
# space-separated). The test suite runs it on the tiny twins: RECIPE=tiny STEPS=2 VQA=twin:blip-vqa.
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=${RECIPE:-kandinsky21-animals}
STEPS=${STEPS:-20000}
VQA=${VQA:-Salesforce/blip-vqa-base}
DEVICE=${DEVICE:-auto}
OUT=${OUT:-runs/paper}
EXTRA=${EXTRA:-}
sets=()
for s in $EXTRA; do sets+=(--set "$s"); done
mkdir -p "$OUT"
paper=(--set train.objective=paper --set train.residual=false --set train.fusion_input=sum --set train.reweight=false)
for arm in full no-cst distok; do
    flags=()
    [ "$arm" = full ] && flags=("${paper[@]}")
    [ "$arm" = no-cst ] && flags=("${paper[@]}" --set train.consistency=false)
    if [ -f "$OUT/$arm/state.safetensors" ]; then
        distok train -o "$OUT/$arm" --steps "$STEPS" --device "$DEVICE" --resume -q >/dev/null
    else
        distok train -r "$RECIPE" -o "$OUT/$arm" --steps "$STEPS" --device "$DEVICE" "${flags[@]}" "${sets[@]}" -q >/dev/null
    fi
    distok eval "$OUT/$arm" --estimator blip-vqa --set "estimator.model=$VQA" "${sets[@]}" --device "$DEVICE" --styles none \
        -o "$OUT/eval-$arm" --json -q > "$OUT/eval-$arm.json"
done
python3 bench/paper_table.py "$OUT/eval-full.json" "$OUT/eval-no-cst.json" "$OUT/eval-distok.json" > "$OUT/table.md"
cat "$OUT/table.md"
