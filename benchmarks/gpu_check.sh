#!/usr/bin/env bash
# One command for a machine with a real NVIDIA GPU (e.g. a short loan):
#   bash benchmarks/gpu_check.sh RESULTS_DIR
# installs the package with its cuda extra (and torch, for the baseline), then
#   1. runs the CUDA test files on the device itself (not the simulator),
#   2. times each kernel's first call (PTX compilation included) in a fresh process,
#   3. runs the GPU benchmark against torch CUDA,
# and writes every log into RESULTS_DIR. Each step has its own time limit so that the
# whole check stays under 5 minutes; a failing step is recorded and the next one runs.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_check.sh RESULTS_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export NUMBA_ENABLE_CUDASIM=0
export NUMBA_CACHE_DIR="$out/numba-cache"   # empty: the first calls below compile

status=0
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)" | tee -a "$out/summary.txt"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "   exit $rc after $((SECONDS - t0)) s; log: $name.log" | tee -a "$out/summary.txt"
  tail -n 3 "$out/$name.log" | sed 's/^/   /' | tee -a "$out/summary.txt"
  [ "$rc" -eq 0 ] || status=1
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true; } \
  >"$out/device.txt" 2>&1
step install 150 python -m pip install -q -e ".[test,cuda]" torch
step first_call 60 python - <<'EOF'
import time
import numpy as np
from numba import cuda
import stn_numba as stn

assert cuda.is_available(), "no CUDA device"
x = cuda.to_device(np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32))
th = cuda.to_device(np.array([[[0.9, 0.1, 0.0], [-0.1, 1.1, 0.0]]] * 4, np.float32))
for name, fn in [
    ("warp_affine", lambda: stn.warp_affine(x, th)),
    ("warp_affine_backward", lambda: stn.warp_affine_backward(x, x, th)),
]:
    t, c = time.perf_counter(), time.process_time()
    fn()
    cuda.synchronize()
    print(f"{name}: first call {time.perf_counter() - t:.2f} s wall, "
          f"{time.process_time() - c:.2f} CPU-s")
EOF
step cuda_tests 120 python -m pytest -q -p no:cacheprovider tests/test_cuda.py \
  tests/test_cuda_warps.py tests/test_cuda_splat.py tests/test_cuda_layout.py \
  tests/test_cuda_nonfinite.py tests/test_cuda_integer_fill.py
step gpu_bench 120 python -m pytest -q -p no:cacheprovider benchmarks/test_gpu.py \
  --benchmark-only --benchmark-columns=median,min,rounds --benchmark-sort=name
echo "results in $out (summary.txt)"
exit $status
