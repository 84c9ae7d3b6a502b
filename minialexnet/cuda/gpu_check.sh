#!/usr/bin/env bash
# The real-GPU check of the GPU path, in one run: correctness first, then timing.
#
#   1. the CUDA tests on the GPU (tests/test_cuda_*.py with MINIALEXNET_REAL_GPU=1: every
#      kernel and the whole training step against NumPy, and that no kernel was compiled for
#      a signature the PTX scan did not see);
#   2. the PTX float64 scan (python -m minialexnet.cuda.ptx);
#   3. only if 1 and 2 passed: python -m minialexnet bench --backend cuda (it checks the GEMM
#      versions and one training step again before it times anything), table last.
# Logs go to $OUT when it is set (the device machine collects it), else ./gpu_check_logs:
# install.log, versions.txt, tests.log, ptx.log, bench.log, bench_cuda.json; a short table last.
#
# How to run it on an H100/H200 device machine (nothing can be downloaded there):
#   numba-cuda 0.30.4 fails at the first kernel compile under numpy 2.5 ("module 'numpy' has
#   no attribute 'row_stack'"), and the machine's python3 has numpy 2.5.2. So carry wheels
#   for it. Once, on the development machine, from the repository root:
#       python -m pip download --only-binary=:all: --no-deps --python-version 3.12 \
#           --platform manylinux_2_28_x86_64 -d .wheels numpy==2.4.6 numba-cuda==0.30.4
#       echo /.wheels/ >> .git/info/exclude
#   (18 MB; the image's own numba, llvmlite and CUDA toolkit are used.) Then run, with the
#   device tool, from the repository root:
#       command: bash minialexnet/cuda/gpu_check.sh      carry: [".wheels"]
#       timeout: 600 s (expect 3-5 minutes, most of it compiling and the naive GEMM's timings)
#   The script installs the wheels into a virtual environment that also sees the machine's
#   packages (PyTorch, pytest, hypothesis, matplotlib, tqdm), prints the versions it got, and
#   runs the project from the working tree (PYTHONPATH), without installing it.
#   On a machine with a GPU and the project installed normally: bash minialexnet/cuda/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
LOGS="${OUT:-gpu_check_logs}"
mkdir -p "$LOGS"
PY=python3
if [ -d .wheels ]; then
    # --without-pip: no ensurepip needed; the machine's pip installs into the venv (--python)
    python3 -m venv --without-pip --system-site-packages /tmp/minialexnet-gpu-venv
    PY=/tmp/minialexnet-gpu-venv/bin/python
    python3 -m pip --python "$PY" install --ignore-installed --no-index --no-deps -q .wheels/*.whl \
        2>&1 | tee "$LOGS/install.log"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PY" - <<'EOF' 2>&1 | tee "$LOGS/versions.txt"
import numba, numpy
from numba import cuda
print(f"numpy {numpy.__version__}, numba {numba.__version__}, cuda module {cuda.implementation}")
print(f"GPU: {cuda.get_current_device().name}")
EOF

MINIALEXNET_REAL_GPU=1 "$PY" -m pytest tests/test_cuda_gemm.py tests/test_cuda_layers.py \
    tests/test_cuda_backend.py tests/test_cuda_ptx.py -q -p no:cacheprovider 2>&1 \
    | tee "$LOGS/tests.log"
tests_rc=${PIPESTATUS[0]}
"$PY" -m minialexnet.cuda.ptx 2>&1 | tee "$LOGS/ptx.log"
ptx_rc=${PIPESTATUS[0]}

bench_rc=skipped
if [ "$tests_rc" -eq 0 ] && [ "$ptx_rc" -eq 0 ]; then
    "$PY" -m minialexnet bench --backend cuda 2>&1 | tee "$LOGS/bench.log"
    bench_rc=${PIPESTATUS[0]}
else
    echo "correctness failed: nothing is timed" | tee "$LOGS/bench.log"
fi

echo
echo "== gpu_check summary =="
printf '%-12s %s\n' "device" "$(tail -n 1 "$LOGS/versions.txt")"
printf '%-12s exit %s: %s\n' "tests" "$tests_rc" "$(tail -n 1 "$LOGS/tests.log")"
printf '%-12s exit %s: %s\n' "ptx scan" "$ptx_rc" "$(tail -n 1 "$LOGS/ptx.log")"
printf '%-12s exit %s\n' "bench" "$bench_rc"
sed -n '/^GEMM TFLOP/,$p' "$LOGS/bench.log"
[ "$tests_rc" -eq 0 ] && [ "$ptx_rc" -eq 0 ] && [ "$bench_rc" = 0 ]
