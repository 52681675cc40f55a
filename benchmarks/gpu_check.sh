#!/usr/bin/env bash
# The GPU check: every CUDA path of stitchkit once, checked against the CPU, and the paper's 8x8
# ResNet-18 grid timed (see benchmarks/gpu_check.py). Run it from the repository root on a machine with
# a GPU; it needs PyTorch, torchvision and the project's other dependencies (no venv is assumed: on a
# machine without one, it uses the sources directly). About 5 minutes on one H200.
#   benchmarks/gpu_check.sh                 # everything
#   benchmarks/gpu_check.sh --only dm tlm   # some steps
#   benchmarks/gpu_check.sh --smoke         # tiny, CPU only: tests the script itself
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# torchrun must find the same interpreter's stitchkit
export PATH="$(dirname "$(command -v "$PY")"):$PATH"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)'
exec "$PY" benchmarks/gpu_check.py "$@"
