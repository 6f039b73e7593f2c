#!/usr/bin/env bash
# GPU smoke test at VIGOR size (benchmarks/gpu_smoke.py): every method trains a few steps in bf16
# with channels_last, then one distillation step and one evaluation, under the training stages'
# determinism settings; prints samples/s and peak memory. One command, a few minutes:
#
#     benchmarks/gpu_smoke.sh [--batch 8] [--steps 4] [--methods g2s_vgg ...]
#
# Uses .venv/bin/python when there is one, else python3 with src/ on the path (a machine with
# torch and timm installed but no venv). cuBLAS needs a fixed workspace to be deterministic,
# set before CUDA starts, as the geodistill CLI sets it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python
    else PYTHON=python3; export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"; fi
fi
exec timeout 900 "$PYTHON" benchmarks/gpu_smoke.py --device cuda "$@"
