#!/usr/bin/env bash
# On one GPU (an H100 node, or any CUDA machine): run the gpu-smoke pipeline for real, training stages only (a few
# minutes), then print tokens/s, MFU (6 N tokens/s over the GPU's dense bf16 peak) and peak memory per stage.
#   bash benchmarks/gpu_check.sh                       # datasets from the Hub (or its cache)
#   STANDINS=1 bash benchmarks/gpu_check.sh            # no network: embedded-corpus rows in the Hub datasets' schemas
# Environment: RUN_NAME (default gpucheck), RUNS_DIR (default experiments/runs), PYTHON (default python).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
RUN_NAME=${RUN_NAME:-gpucheck}
RUNS_DIR=${RUNS_DIR:-experiments/runs}
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: no CUDA device here')"
extra=()
if [ "${STANDINS:-0}" = 1 ]; then
    standins="$RUNS_DIR/$RUN_NAME-standins"
    "$PYTHON" -c "import sys; from modeling_modern_llm.data import REGISTRY; from modeling_modern_llm.training.rehearsal import write_standins; write_standins(sys.argv[1], [n for n in REGISTRY if not REGISTRY[n].embedded])" "$standins"
    extra=(--local_data_dir "$standins")
fi
start=$(date +%s)
"$PYTHON" recipes/pipeline.py --config recipes/configs/gpu-smoke/pipeline.yaml --run_name "$RUN_NAME" \
    --runs_dir "$RUNS_DIR" --skip_eval true "${extra[@]}"
echo "gpu-smoke training: $(( $(date +%s) - start )) s (target: under 8 minutes)"
"$PYTHON" benchmarks/bench_pipeline.py --run_dir "$RUNS_DIR/$RUN_NAME"
