#!/usr/bin/env bash
# The paper's protocol with the real weights (issues: method fidelity, the paper's tables), in one command:
#   bash bench/reproduce_paper.sh            # on a GPU with the models in the Hugging Face cache
# 1. trains kandinsky21-animals for 20K steps: the paper's objective, full and without L_cst (the paper's
#    ablation: train.objective=paper, train.residual=false, train.fusion_input=sum), and distok's default;
# 2. evaluates each with BLIP-VQA on renders ("What animal is in the photo?", the paper's question),
#    `estimator.images` renders per distribution, T by the calibration rule, beside the raw-mix baseline,
#    and the full and distok arms with the paper's image metrics (METRICS) on the 30 distributions and on
#    30 class pairs (ours: the paper's are unpublished);
# 3. writes table.md: Table 1 laid out like the paper's (VQAScore, PickScore, ImageReward; CLIPScore beside)
#    with the paper's numbers beside ours, the L_cst ablation (0.0602 / 0.0732), the time per concept.
# The eval here is the paper's (the training prompt); `distok eval RUN` adds the held-out styles.
# Expected time on one H100 (counted from ../shared/notes/gpu-anchors.md, eager, not measured): training
# 3 × 20K steps with BLIP estimation every 50 steps ≈ 3 × 15 min; the KL evals 3 × (8 + 30 × 2 tokens) × 4
# renders × 0.14 s ≈ 2 min; the metric evals 2 × 2 sets × 60 tokens × 4 renders × 0.14 s ≈ 4.5 min plus the
# metric models (VQAScore's CLIP-FlanT5-XXL ≈ 0.1 s an image: ≈ 2 min). About an hour in all.
# Environment: RECIPE, STEPS, VQA (the BLIP-VQA checkpoint), METRICS (eval --metric; default all five),
# DEVICE, OUT, EXTRA (more --set overrides, space-separated). The test suite runs it on the tiny twins:
# RECIPE=tiny STEPS=2 VQA=twin:blip-vqa METRICS=clipscore,pickscore,blip-kl.
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=${RECIPE:-kandinsky21-animals}
STEPS=${STEPS:-20000}
VQA=${VQA:-Salesforce/blip-vqa-base}
METRICS=${METRICS:-clipscore,pickscore,vqascore,imagereward,blip-kl}
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
    metric=()
    [ "$arm" != no-cst ] && metric=(--metric "$METRICS")
    distok eval "$OUT/$arm" --estimator blip-vqa --set "estimator.model=$VQA" "${sets[@]}" --device "$DEVICE" --styles none \
        "${metric[@]}" -o "$OUT/eval-$arm" --json -q > "$OUT/eval-$arm.json"
    if [ "$arm" != no-cst ]; then
        [ -f "$OUT/pairs.json" ] || python3 bench/paper_table.py pairs "$OUT/$arm" > "$OUT/pairs.json"
        distok eval "$OUT/$arm" --estimator blip-vqa --set "estimator.model=$VQA" "${sets[@]}" --device "$DEVICE" \
            --styles none --distributions "$OUT/pairs.json" "${metric[@]}" -o "$OUT/eval-pairs-$arm" --json -q \
            > "$OUT/eval-pairs-$arm.json"
    fi
done
python3 bench/paper_table.py time "$OUT/full" > "$OUT/time.json"
python3 bench/paper_table.py table "$OUT" > "$OUT/table.md"
cat "$OUT/table.md"
