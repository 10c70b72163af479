#!/usr/bin/env bash
# The one prepared GPU run (issue: benchmarks). Run through the device tool from the repository root:
#   here, once:  echo /.whl/ >> .git/info/exclude
#                python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#                    --platform manylinux_2_28_x86_64 -d .whl diffusers==0.42.1
#   device run:  command "bash bench/run_gpu.sh", carry [".whl"], timeout_s 480 (leaves time in a 15-minute lease to rerun a part)
# It installs what the GPU image lacks (diffusers: its other requirements are in the image), then runs
# every GPU figure in one process (bench/gpu_bench.py: eager baselines first, then the speed-up attempts,
# inside a 390 s budget) and writes $OUT/gpu_bench.json after each figure, plus the log and nvidia-smi's
# line. Check it here first, on the CPU, with the same install path:  SMOKE=1 bash bench/run_gpu.sh
set -uo pipefail
OUT=${OUT:-/tmp/distok-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
if [ -n "${SMOKE:-}" ]; then
    python3 bench/gpu_bench.py --smoke --out "$OUT" 2>&1 | tee "$OUT/gpu_bench.log"
else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
    python3 bench/gpu_bench.py --out "$OUT" --budget-s "${BUDGET_S:-390}" 2>&1 | tee "$OUT/gpu_bench.log"
fi
