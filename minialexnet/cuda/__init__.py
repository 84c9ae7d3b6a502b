"""The GPU path: Numba-CUDA kernels for every AlexNet layer, checked against the NumPy ones.

Each module mirrors one in ``minialexnet/layers`` by name (``conv``, ``linear``, ``pool``,
``lrn``, ``activations``, ``dropout``, ``loss``) and ``optim`` mirrors ``minialexnet.optim``;
``gemm`` holds the matrix multiply, version by version (v1 naive -> v5 split-K); ``layout``
the device layout; ``backend.CudaTrainer`` a whole training step on the device; ``bench`` the
``python -m minialexnet bench --backend cuda`` benchmark; ``ptx`` the float64 scan.

Convolution as im2col + GEMM, not implicit GEMM
-----------------------------------------------
An implicit GEMM computes the im2col matrix's elements on the fly while loading GEMM tiles,
and so never writes it: it saves memory traffic (conv2's columns at batch 128 are 0.9 GB)
and is what cuDNN mostly does. We chose the explicit form because:

* it splits one hard kernel into two easy ones, each tested on its own against NumPy: a
  copy (im2col) and the GEMM that the fully connected layers need anyway. Every GEMM
  version therefore speeds up the whole network, and the course's v1 -> v5 story is told once;
* backward needs three different products (forward NN, dW as NT, dX as TN) plus col2im.
  Explicit columns make all three the same GEMM with a transpose flag. An implicit GEMM
  needs a different gather for each of the three;
* it mirrors ``minialexnet/layers/conv.py``, which is im2col + matmul, so a reader sees the
  same algorithm in NumPy and in CUDA;
* the price is measurable and small next to the GEMM: im2col writes each column element once
  (~0.9 GB for conv2 at batch 128, well under a millisecond at H100 bandwidth), while the
  GEMM reading it does 2*F FLOPs per element (``bench`` prints both).

Activations on the device are *feature-major* — (C, N, H, W) and (D, N) — so that a GEMM's
output is the next layer's input with no transposes; ``layout.py`` explains.

Importing this package's kernel modules imports Numba and compiles nothing until a kernel is
first launched. Nothing outside ``minialexnet.cuda`` imports it at import time: the CPU
package never needs Numba. ``gpu_unavailable_reason`` tells, without a traceback, why a real
GPU can't be used. Tests run the kernels in Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, set by ``tests/conftest.py`` unless MINIALEXNET_REAL_GPU=1).
"""

from __future__ import annotations

import os
import subprocess
import sys


def gpu_unavailable_reason() -> str | None:
    """None when a real CUDA GPU can run the kernels, else one line saying why not."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "NUMBA_ENABLE_CUDASIM=1 is set: kernels would run in the simulator, not a GPU"
    try:
        from numba import cuda
    except Exception as error:  # numba missing or broken: say so, no traceback
        return f"numba-cuda cannot be imported ({type(error).__name__}: {error})"
    try:
        if not cuda.is_available():
            return "no CUDA GPU was found (numba: cuda.is_available() is False)"
    except Exception as error:
        return f"the CUDA driver could not be initialised ({type(error).__name__}: {error})"
    return None


def use_simulator_without_gpu() -> bool:
    """Choose Numba's mode before Numba is imported: the real GPU if one answers, else the
    simulator. Returns True when the simulator was chosen.

    Asking Numba imports it, and it reads ``NUMBA_ENABLE_CUDASIM`` only once, at import; so
    the question is put to a separate Python process. For scripts (lesson 09) that must run
    everywhere; must be called before anything imports numba.
    """
    if "numba" in sys.modules:
        raise RuntimeError("use_simulator_without_gpu: numba is already imported; call it first")
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return True
    probe = "from numba import cuda; print(cuda.is_available())"
    try:
        answer = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        answer = ""
    if answer != "True":
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        return True
    return False
