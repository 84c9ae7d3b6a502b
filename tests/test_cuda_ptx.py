"""Every kernel compiles to PTX for Hopper with no float64 instruction in it.

The simulator computes in float32 whatever the code says, so it cannot see a float64
promotion (``x * 0.5`` with float32 ``x``); the compiled PTX can. Compiling needs NVVM and
NVRTC, not a GPU: the test extra installs the ``nvidia-nvvm`` and ``nvidia-cuda-nvrtc``
wheels. The scan runs as ``python -m minialexnet.cuda.ptx`` in a subprocess, since this
process runs Numba in simulator mode, which cannot compile.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def nvvm_missing() -> str | None:
    """Why PTX cannot be compiled here, or None when it can."""
    probe = (
        "from cuda.pathfinder import load_nvidia_dynamic_lib as load\nload('nvvm'); load('nvrtc')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    if result.returncode == 0:
        return None
    last = (result.stderr.strip().splitlines() or ["?"])[-1]
    return f"NVVM/NVRTC not loadable ({last}); pip install -e '.[test]' installs them"


def test_every_kernel_compiles_without_float64():
    why = nvvm_missing()
    if why is not None:
        pytest.skip(why)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run(
        [sys.executable, "-m", "minialexnet.cuda.ptx"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    compiled = int(summary.split()[0])
    assert compiled >= 30 and summary.endswith("0 with float64 instructions"), summary
    # v4's point, visible before any timing: its hot loop is 64 FMAs and 16 shared loads
    # with a handful of other instructions; v3's carries ~90 (signed 64-bit index arithmetic).
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "64 fma, 16 ld" in rows["gemm.v4_NN"], rows["gemm.v4_NN"]
    other_v4 = int(rows["gemm.v4_NN"].split(",")[-1].split()[0])
    other_v3 = int(rows["gemm.v3_NN"].split(",")[-1].split()[0])
    assert other_v4 < 20 < other_v3, (rows["gemm.v4_NN"], rows["gemm.v3_NN"])


def test_the_scan_catches_float64():
    """The scan is only worth something if it fails on a float64 kernel: compile one."""
    why = nvvm_missing()
    if why is not None:
        pytest.skip(why)
    code = (
        "from numba import cuda\n"
        "from minialexnet.cuda.ptx import compile_kernel\n"
        "def halve(x):\n"
        "    i = cuda.grid(1)\n"
        "    if i < x.size:\n"
        "        x[i] = x[i] * 0.1\n"
        "ptx = compile_kernel(cuda.jit(halve), 'void(float32[::1])')\n"
        "print(sum('.f64' in line for line in ptx.splitlines()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 0


def test_every_kernel_is_in_the_scan():
    """A kernel written without ``@register`` would escape the scan: look for any."""
    import importlib
    import pkgutil

    import minialexnet.cuda
    from minialexnet.cuda.ptx import all_kernels

    scanned = {id(kernel) for kernel, _ in all_kernels().values()}
    missing = []
    for info in pkgutil.iter_modules(minialexnet.cuda.__path__, "minialexnet.cuda."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            # simulator kernels carry ``_device``, compiled ones ``targetoptions["device"]``
            device = getattr(obj, "_device", getattr(obj, "targetoptions", {}).get("device"))
            if device is False and id(obj) not in scanned:
                missing.append(f"{info.name}.{name}")
    assert not missing, f"kernels without a registered signature: {missing}"
