#!/usr/bin/env bash
# One call on a lent GPU machine: install the project (with xautodl for the paired step), then run
# benchmarks/device_check.py, which prints one JSON object. Arguments go to device_check.py:
#   bash benchmarks/device_check.sh                       # on the GPU, about 6 minutes
#   bash benchmarks/device_check.sh --device cpu --small  # the CPU dry run CI does (--no-install there)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--no-install" ]]; then
    shift
else
    python3 -m venv .venv-device
    . .venv-device/bin/activate
    python -m pip install -q --upgrade pip
    # the torch already on the machine when there is one (a GPU image brings its own CUDA build)
    python -m pip install -q -e . || { echo "error: installing the project failed" >&2; exit 1; }
    python -m pip install -q --no-deps xautodl==1.0.0 || echo "device_check: xautodl not installed; its part fails" >&2
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec python benchmarks/device_check.py "$@"
