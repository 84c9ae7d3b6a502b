# %% [markdown]
# # Lesson 09: GPU kernels, from a naive matrix multiply to a tuned one
#
# 95% of AlexNet's multiply-adds are in its convolutions, and with im2col every convolution
# is a matrix multiply (GEMM); the FC layers are GEMMs already. So the speed of the GPU
# path is, to first order, the speed of one kernel. `minialexnet/cuda/gemm.py` keeps it in
# five numbered versions, the way a course builds it up:
#
# | version | what changed |
# |---|---|
# | v1 | one thread per output, operands read from global memory |
# | v2 | 16x16 tiles staged in shared memory, each value reused 16 times |
# | v3 | 64x64 block tile, 4x4 outputs per thread held in registers |
# | v4 | 8x8 per thread, 128x128 tile, unsigned 32-bit indices, offsets hoisted |
# | v5 | v4, plus K split into slices so that skinny shapes fill the GPU |
#
# This lesson asks, for each step: *what limits the kernel, and why does the change lift
# that limit?* The answer is arithmetic about bytes per FLOP (a roofline), checked against
# the PTX the compiler emits. It runs everywhere: without a GPU the kernels run in Numba's
# CUDA simulator (one OS thread per CUDA thread: correct results, tiny sizes, no timings).

# %%
import os
import subprocess
import sys
import time

from minialexnet.cuda import use_simulator_without_gpu

SIMULATOR = use_simulator_without_gpu()  # must run before anything imports numba

import matplotlib.pyplot as plt
import numpy as np
from numba import cuda

from minialexnet import build_alexnet, summarize
from minialexnet.cuda.backend import CudaTrainer
from minialexnet.cuda.bench import device_ms, gemm_shapes, random_inputs
from minialexnet.cuda.gemm import VERSIONS, gemm, gemm_flops, reference
from minialexnet.optim import SGD
from minialexnet.plots import quick_mode, save_figure
from minialexnet.step import train_step

QUICK = quick_mode()
print("running on", "the CUDA simulator (no GPU found)" if SIMULATOR else "a real GPU")

# %% [markdown]
# ## 1. The work: AlexNet's GEMMs at batch 128
#
# For each layer, the forward GEMM C (M x N) = A (M x K) @ B (K x N) with M = filters,
# N = batch x output pixels, K = the receptive field's size. FLOPs = 2MNK; the least memory
# traffic is reading A and B once and writing C once, 4(MK + KN + MN) bytes. Their ratio,
# the *arithmetic intensity*, says how many FLOPs a kernel may do per byte it moves.

# %%
alexnet = build_alexnet("ungrouped")
print(f"{'GEMM':<10}{'M':>6}{'N':>8}{'K':>6}{'GFLOP':>8}{'MB moved':>10}{'FLOP/byte':>11}")
for label, (groups, M, N, K), _ in gemm_shapes(alexnet, batch=128, square=4096)[1:9]:
    flop = gemm_flops(groups, M, N, K)
    bytes_min = 4 * groups * (M * K + K * N + M * N)
    print(
        f"{label:<10}{M:>6}{N:>8}{K:>6}{flop / 1e9:>8.1f}{bytes_min / 1e6:>10.1f}"
        f"{flop / bytes_min:>11.0f}"
    )
del alexnet

# %% [markdown]
# Every GEMM here does 40 to 170 FLOPs per byte it must move: more than the ~20 at which an
# H100 stops being limited by memory (67 fp32 TFLOP/s over 3.35 TB/s). So a GEMM kernel
# *can* run at the FMA units' peak; whether it does depends on how it moves its data. (The
# FC layers have another problem: C is only 4096 x 128, a few dozen tiles for ~132
# multiprocessors. That is what v5 is for.)
#
# ## 2. Why each version is faster: two ceilings
#
# A kernel moves data at two levels. **Global memory** (HBM, ~3.35 TB/s on an H100): a
# block that stages tiles of T x K of A and K x T of B computes T x T outputs, so each
# output costs 2K/T floats of global traffic: intensity T/4 FLOP/byte. **Shared memory**: an
# SM's shared memory answers one 32-lane load instruction per clock, while its FMA units
# retire four 32-lane FMAs per clock. A thread that computes a t x t block of outputs loads
# 2t values per step of k and does t^2 FMAs with them: t/2 FMAs per load, and it needs 4 to
# keep the FMA units busy. (v1 and v2 compute one output per thread: v1 loads its operands
# from global memory every time; v2 from shared memory, two loads per FMA.)

# %%
PEAK = 67.0  # H100 SXM fp32 TFLOP/s (datasheet); cuBLAS sgemm reaches ~50
HBM = 3.35  # TB/s
tile = {1: 1, 2: 16, 3: 64, 4: 128}  # outputs per block edge (v1: none shared)
per_thread = {1: 1, 2: 1, 3: 4, 4: 8}  # outputs per thread edge
ceilings = {}
print(f"{'version':<22}{'global FLOP/B':>14}{'HBM bound':>11}{'FMA/load':>10}{'LSU bound':>11}")
for v in (1, 2, 3, 4):
    global_intensity = tile[v] / 4  # FLOP per byte of global traffic
    hbm_bound = min(PEAK, global_intensity * HBM)
    fma_per_load = per_thread[v] / 2 if v > 1 else 0.5
    lsu_bound = min(PEAK, PEAK * fma_per_load / 4)
    ceilings[v] = (hbm_bound, lsu_bound)
    print(
        f"v{v} {VERSIONS[v].name:<19}{global_intensity:>14.2f}{hbm_bound:>11.1f}"
        f"{fma_per_load:>10.1f}{lsu_bound:>11.1f}"
    )

# %% [markdown]
# v1's ceiling is memory (caches make it a little better than the table); v2 moves it to
# the shared-memory load unit (8 TFLOP/s); v3 to 33; v4 to the FMA peak itself. Measured on
# one H200 by this project, kernels built like v2, v3 and v4 ran at 7.1, 12.9 and 26.0
# TFLOP/s (cuBLAS: 50.6): v2 sits on its ceiling, v3 and v4 well under theirs. Something
# besides loads and FMAs eats the issue slots: integer instructions. Section 4 shows them.
# (The H200 has the H100's FMA units and more bandwidth: the same ceilings, or higher.)

# %% [markdown]
# ## 3. Run every version, and check it
#
# Each version must give the same product as NumPy (float64) before its speed means
# anything; the output is filled with NaN first, so an element no thread wrote shows. The
# shape is no multiple of any tile: edges are where kernels go wrong.

# %%
M, N, K = (9, 7, 11) if SIMULATOR else ((515, 513, 517) if QUICK else (2051, 2049, 2053))
rng = np.random.default_rng(0)
a = rng.standard_normal((M, K), dtype=np.float32)
b = rng.standard_normal((K, N), dtype=np.float32)
want = reference(a, b, False, False)[0]
da, db = cuda.to_device(a), cuda.to_device(b)
measured = {}
for v in VERSIONS:
    c = cuda.to_device(np.full((M, N), np.nan, np.float32))
    gemm(da, db, c, version=v)
    error = float(np.abs(c.copy_to_host() - want).max())
    line = f"v{v} {VERSIONS[v].name:<18} max |error| {error:.1e}"
    if not SIMULATOR and error < 1e-6 * K:
        ms = device_ms(lambda v=v, c=c: gemm(da, db, c, version=v), repeats=3 if QUICK else 5)
        measured[v] = gemm_flops(1, M, N, K) / ms / 1e9
        line += f"   {measured[v]:6.2f} TFLOP/s"
    print(line)
if SIMULATOR:
    print("(no timings: the simulator runs each CUDA thread as a Python thread)")

# %% [markdown]
# The ceilings of section 2 beside measurements: black diamonds are kernels built like v2,
# v3 and v4, timed at 4096^3 on one H200 by this project (docs/facts.md, "GPU notes"); red
# stars, on a GPU, are this run's.

# %%
MEASURED_H200 = {2: 7.1, 3: 12.9, 4: 26.0}  # docs/facts.md: kernels built like v2, v3, v4
fig, ax = plt.subplots(figsize=(7.5, 4.2))
x = np.arange(4)
ax.bar(x - 0.2, [ceilings[v][0] for v in (1, 2, 3, 4)], 0.4, label="global-memory (HBM) bound")
ax.bar(x + 0.2, [ceilings[v][1] for v in (1, 2, 3, 4)], 0.4, label="shared-load issue bound")
ax.axhline(PEAK, color="k", linestyle="--", linewidth=1, label=f"fp32 FMA peak ({PEAK:.0f})")
ax.plot(
    [v - 1 for v in MEASURED_H200], list(MEASURED_H200.values()), "kD", label="H200, docs/facts.md"
)
if measured:
    ax.plot(
        [v - 1 for v in measured if v < 5],
        [measured[v] for v in measured if v < 5],
        "r*",
        markersize=12,
        label=f"this run, {M}x{N}x{K}",
    )
ax.set_yscale("log")
ax.set_ylim(0.3, 150)
ax.set_xticks(x, ["v1\nnaive", "v2\nshared tiles", "v3\n4x4 per thread", "v4\n8x8, unsigned"])
ax.set_ylabel("TFLOP/s (H100 fp32, log scale)")
ax.set_title("Each GEMM version lifts the ceiling that bound the one before")
ax.legend(fontsize=8, loc="upper left")
save_figure(fig, "09_gemm_ceilings")

# %% [markdown]
# ## 4. Read the compiler's output
#
# `python -m minialexnet.cuda.ptx` compiles every kernel to PTX (no GPU needed, only NVVM)
# and counts the instructions in the basic block that holds most of each kernel's FMAs: the
# inner loop. Per step of that loop, v3 does 32 FMAs and 16 shared loads, but around them
# ~90 integer instructions: Numba's signed 64-bit indices need 64-bit address arithmetic and
# a "did the index go negative? then wrap around" select on every access. v4 declares every
# index unsigned 32-bit (no wraparound possible, so no check), uses 1-D shared arrays and
# computes its base offsets once: 64 FMAs, 16 loads, and a handful of others.

# %%
if QUICK:
    print("(quick mode: the PTX scan is skipped; run python -m minialexnet.cuda.ptx)")
else:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    names = [f"gemm.v{v}_NN" for v in (1, 2, 3, 4)]
    scan = subprocess.run(
        [sys.executable, "-m", "minialexnet.cuda.ptx", *names],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    print(scan.stdout or f"(PTX not available here: {scan.stderr.strip().splitlines()[-1:]})")

# %% [markdown]
# ## 5. One training step: CPU against GPU
#
# The whole step (forward, loss, backward, SGD update) of the `mini` AlexNet on the CPU
# (NumPy) and, where there is a GPU, with `CudaTrainer`, which keeps every activation,
# gradient and parameter on the device: the batch goes in, the loss comes out.
# `python -m minialexnet bench --backend cuda` times the full-size net at batch 128 beside
# PyTorch's; docs/facts.md ("GPU notes") puts PyTorch's float32 step (cuDNN, TF32 off) at 20.6 ms
# on an H200.

# %%
batch = 8 if QUICK else 64
model = build_alexnet("mini")
x, y = random_inputs(model, batch)
flop = 3 * 2 * summarize(model).total_macs * batch
optimizer = SGD(model)
train_step(model, optimizer, x, y)  # warm-up
start = time.perf_counter()
repeats = 2 if QUICK else 5
for _ in range(repeats):
    train_step(model, optimizer, x, y)
step_ms = {"CPU (NumPy)": (time.perf_counter() - start) / repeats * 1e3}
if not SIMULATOR:
    trainer = CudaTrainer(model, optimizer)
    trainer.step(x, y)  # warm-up: compiles every kernel
    start = time.perf_counter()
    for _ in range(repeats):
        trainer.step(x, y)
    step_ms["GPU (minialexnet.cuda)"] = (time.perf_counter() - start) / repeats * 1e3
for name, ms in step_ms.items():
    print(f"{name:<24}{ms:9.1f} ms per step   {flop / ms / 1e6:8.1f} GFLOP/s")
if SIMULATOR:
    print("GPU: no GPU here; on one, this cell times CudaTrainer on the same batch.")

# %%
fig, ax = plt.subplots(figsize=(7, 2.8))
rates = {name: flop / ms / 1e6 for name, ms in step_ms.items()}  # GFLOP/s
ax.barh(list(rates), list(rates.values()), color=["tab:blue", "tab:green"][: len(rates)])
ax.axvline(PEAK * 1e3, color="k", linestyle="--", linewidth=1, label="H100 fp32 peak")
for i, rate in enumerate(rates.values()):
    ax.text(rate * 1.3, i, f"{rate:,.1f}", va="center")
ax.set_xscale("log")
ax.set_xlim(0.1, PEAK * 3e3)
ax.set_xlabel(f"GFLOP/s of one training step (mini AlexNet, batch {batch}; log scale)")
ax.set_title("Training step throughput" + ("" if len(rates) > 1 else " (no GPU here to time)"))
ax.legend(fontsize=8, loc="lower right")
save_figure(fig, "09_step_time")

# %% [markdown]
# ## Exercises
#
# 1. **Double buffering.** v4 waits at a barrier while the next tiles load. Give it two
#    pairs of shared tiles and load tile t+1 while computing on tile t. What does the PTX
#    hot block look like afterwards, and on a GPU, what does `bench --backend cuda` say?
# 2. **Split-K's price.** v5 writes `splits` partial products and sums them in a second
#    kernel. For fc6's forward at batch 128 (M=4096, N=128, K=9216), how many bytes does the
#    partial sum move for 9 slices, against the GEMM's own? At what number of slices would
#    the reduction cost as much as it saves?
# 3. **A float64 trap.** In `minialexnet/cuda/lrn.py`, replace `-beta` by `-0.75` in the
#    forward kernel and run `python -m minialexnet.cuda.ptx lrn.lrn_forward_kernel`. What
#    does the scan report, why did the simulator's tests not notice, and what would it cost?
