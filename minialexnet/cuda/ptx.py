"""Compile every kernel to PTX and read it: the float64 scan, and the GEMM inner loops.

``python -m minialexnet.cuda.ptx`` compiles each kernel of the package for Hopper (sm_90) with
``cuda.compile_ptx`` — no GPU needed, only NVVM (the ``nvidia-nvvm`` and ``nvidia-cuda-nvrtc``
wheels of the test extra) — and prints, per kernel, its float64 instructions (there must be
none: ``x * 0.5`` with float32 x silently computes in float64, 1/64 the speed on most GPUs,
and the simulator cannot show it), its local-memory accesses (registers spilled or arrays not
promoted), and for the block of PTX that holds most of its FMAs: how many FMAs, loads and other
instructions it has. That last line is how v4's gain shows before any timing. Exit status 1
when any kernel holds a float64 instruction.

Must run without ``NUMBA_ENABLE_CUDASIM`` (the simulator has no compiler); the tests start it
in a subprocess.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

CC = (9, 0)  # Hopper: the H100/H200 this project times on
_GEMM_ARGS = "float32[::1], float32[::1], float32[::1], int64, int64, int64"


@dataclass
class PtxReport:
    name: str
    f64_lines: list[str]
    local_accesses: int
    hot_block: Counter  # instruction kinds in the basic block with the most FMAs

    @property
    def hot_summary(self) -> str:
        b = self.hot_block
        if not b["fma"]:
            return "-"
        other = sum(b.values()) - b["fma"] - b["ld"] - b["st"] - b["bar"] - b["bra"]
        return f"{b['fma']} fma, {b['ld']} ld, {other} other"


def all_kernels() -> dict[str, tuple[Any, str]]:
    """Every kernel of ``minialexnet.cuda`` with its launch signature, by name."""
    from . import activations, conv, dropout, gemm, layout, linear, loss, lrn, optim, pool  # noqa: F401
    from .common import SIGNATURES

    kernels = dict(SIGNATURES)
    for version in sorted(gemm.VERSIONS):
        if version == 5:
            continue  # v5 launches v4's kernel
        args = _GEMM_ARGS + (", int64, int64" if version == 4 else "")
        for ta in (False, True):
            for tb in (False, True):
                name = f"gemm.v{version}_{'T' if ta else 'N'}{'T' if tb else 'N'}"
                kernels[name] = (gemm.kernel(version, ta, tb), f"void({args})")
    return kernels


def hot_block(ptx: str) -> Counter:
    """Instruction kinds (``fma``, ``ld``, ``add``...) of the basic block with the most FMAs."""
    best: Counter = Counter()
    for block in re.split(r"\n\$L__BB\d+_\d+:", ptx):
        kinds = Counter(
            line.split()[0].split(".")[0]
            for line in (raw.strip() for raw in block.splitlines())
            if line and not line.startswith(("//", ".", "{", "}", "@")) and not line.endswith(":")
        )
        if kinds["fma"] > best["fma"]:
            best = kinds
    return best


def compile_kernel(kernel: Any, signature: str) -> str:
    from numba import cuda

    ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=CC)
    return ptx


def scan(names: list[str] | None = None) -> list[PtxReport]:
    """Compile the kernels (all, or those named) and report on each."""
    reports = []
    for name, (kernel, signature) in sorted(all_kernels().items()):
        if names and name not in names:
            continue
        ptx = compile_kernel(kernel, signature)
        f64 = [line.strip() for line in ptx.splitlines() if ".f64" in line]
        local = len(re.findall(r"\b(?:ld|st)\.local", ptx))
        reports.append(PtxReport(name, f64, local, hot_block(ptx)))
    return reports


def main(argv: list[str] | None = None) -> int:
    from numba import config

    if config.ENABLE_CUDASIM:
        print(
            "ptx: NUMBA_ENABLE_CUDASIM=1 is set; the simulator cannot compile PTX", file=sys.stderr
        )
        return 2
    argv = sys.argv[1:] if argv is None else argv
    reports = scan(argv or None)
    width = max(len(r.name) for r in reports)
    print(f"{'kernel':<{width}}  f64  local  hottest block (cc {CC[0]}.{CC[1]})")
    for r in reports:
        print(f"{r.name:<{width}}  {len(r.f64_lines):>3}  {r.local_accesses:>5}  {r.hot_summary}")
    bad = [r for r in reports if r.f64_lines]
    for r in bad:
        print(f"{r.name}: float64 instructions, e.g. {r.f64_lines[:3]}", file=sys.stderr)
    print(f"{len(reports)} kernels compiled, {len(bad)} with float64 instructions")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
