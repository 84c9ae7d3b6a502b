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
from functools import partial

from minialexnet.cuda import use_simulator_without_gpu

SIMULATOR = use_simulator_without_gpu()  # must run before anything imports numba

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import LogLocator
from numba import cuda

from minialexnet import build_alexnet, summarize
from minialexnet.cuda.backend import CudaTrainer
from minialexnet.cuda.bench import device_ms, gemm_shapes, random_inputs
from minialexnet.cuda.gemm import VERSIONS, gemm, gemm_flops, reference
from minialexnet.optim import SGD
from minialexnet.plots import quick_mode, save_figure
from minialexnet.step import train_step
from minialexnet.timing import timed_calls

QUICK = quick_mode()
# The ceilings below are computed for one GPU, from its spec sheet: NVIDIA's H200 datasheet
# gives 67 TFLOP/s float32 (the H100 SXM's FMA units, 132 multiprocessors) and 4.8 TB/s of
# HBM3e bandwidth. These are spec-sheet peaks, not measurements.
SPEC_GPU, PEAK, HBM = "H200", 67.0, 4.8  # name, fp32 TFLOP/s, TB/s
GPU_NAME = None if SIMULATOR else cuda.get_current_device().name
if isinstance(GPU_NAME, bytes):  # numba-cuda versions differ: bytes or str
    GPU_NAME = GPU_NAME.decode()
print("running on", "the CUDA simulator (no GPU found)" if SIMULATOR else f"a real GPU: {GPU_NAME}")

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
intensity = {}
for label, (groups, M, N, K), _ in gemm_shapes(alexnet, batch=128, square=4096)[1:9]:
    flop = gemm_flops(groups, M, N, K)
    bytes_min = 4 * groups * (M * K + K * N + M * N)
    intensity[label] = flop / bytes_min
    print(
        f"{label:<10}{M:>6}{N:>8}{K:>6}{flop / 1e9:>8.1f}{bytes_min / 1e6:>10.1f}"
        f"{intensity[label]:>11.0f}"
    )
del alexnet
ridge = PEAK / HBM  # FLOP/byte above which the FMA units, not memory, set the pace
low, high = min(intensity, key=intensity.get), max(intensity, key=intensity.get)
above = sum(i > ridge for i in intensity.values())
print(
    f"\nThese GEMMs do {intensity[low]:.0f} ({low}) to {intensity[high]:.0f} ({high}) FLOPs per "
    f"byte they must move; an {SPEC_GPU} stops being limited by memory at {PEAK:.0f} TFLOP/s / "
    f"{HBM} TB/s = {ridge:.0f} FLOP/byte (spec sheet): {above} of {len(intensity)} are above it."
)

# %% [markdown]
# So, as the last line says, a GEMM kernel *can* run at the FMA units' peak on these
# shapes; whether it does depends on how it moves its data. (The FC layers have another
# problem: C is only 4096 x 128, a few dozen tiles for 132 multiprocessors. That is what v5
# is for.)
#
# ## 2. Why each version is faster: two ceilings
#
# A kernel moves data at two levels. **Global memory** (HBM, 4.8 TB/s on an H200): a
# block that stages tiles of T x K of A and K x T of B computes T x T outputs, so each
# output costs 2K/T floats of global traffic: intensity T/4 FLOP/byte. **Shared memory**: an
# SM's shared memory answers one 32-lane load instruction per clock, while its FMA units
# retire four 32-lane FMAs per clock. A thread that computes a t x t block of outputs loads
# 2t values per step of k and does t^2 FMAs with them: t/2 FMAs per load, and it needs 4 to
# keep the FMA units busy. (v1 and v2 compute one output per thread: v1 loads its operands
# from global memory every time; v2 from shared memory, two loads per FMA.)

# %%
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
for v, (hbm_bound, lsu_bound) in ceilings.items():
    ceiling = min(hbm_bound, lsu_bound)
    what = (
        "the fp32 FMA peak itself"
        if ceiling == PEAK
        else "global memory"
        if hbm_bound < lsu_bound
        else "the shared-memory load unit"
    )
    print(f"v{v}: at most {ceiling:4.1f} TFLOP/s on an {SPEC_GPU}, bound by {what}")

# %% [markdown]
# Each step lifts the ceiling that bound the one before (the last lines): v1 is held by
# global memory (caches make it a little better than the table), v2 by the shared-memory
# load unit, v3 by the same unit at a higher level, v4 by nothing but the FMA units. These
# are upper bounds computed from a spec sheet, not speeds: a real kernel also spends issue
# slots on integer instructions (section 4 shows them), so it runs below its ceiling.
#
# This project has not yet timed these kernels on a GPU. docs/facts.md ("GPU notes") quotes
# one H200 measurement of Numba GEMMs *built like* v2, v3 and v4 (not these files): 7.1, 12.9
# and 26.0 TFLOP/s at 4096^3, against cuBLAS's 50.6. They are quoted, not plotted: the
# figure below shows only the computed ceilings and what this run measures itself.

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
# The ceilings of section 2 as bars (computed from the H200's spec sheet: upper bounds, not
# measurements). On a GPU, red stars are this run's measured speeds, at the shape above;
# without one there is nothing measured to plot, and the figure says so.

# %%
fig, ax = plt.subplots(figsize=(7.5, 4.2))
x = np.arange(4)
bound = "computed from the spec sheet"
ax.bar(x - 0.2, [ceilings[v][0] for v in (1, 2, 3, 4)], 0.4, label=f"HBM bound ({bound})")
ax.bar(x + 0.2, [ceilings[v][1] for v in (1, 2, 3, 4)], 0.4, label="shared-load issue bound")
ax.axhline(
    PEAK, color="k", linestyle="--", linewidth=1, label=f"fp32 FMA peak, spec sheet ({PEAK:.0f})"
)
if measured:
    ax.plot(
        [v - 1 for v in measured if v < 5],
        [measured[v] for v in measured if v < 5],
        "r*",
        markersize=12,
        label=f"measured in this run on {GPU_NAME}, {M}x{N}x{K}",
    )
ax.set_yscale("log")
ax.set_ylim(0.3, 150)
ax.set_xticks(x, ["v1\nnaive", "v2\nshared tiles", "v3\n4x4 per thread", "v4\n8x8, unsigned"])
ax.set_ylabel(f"TFLOP/s ({SPEC_GPU} fp32 ceilings, log scale)")
measured_note = (
    f"red: measured on {GPU_NAME}" if measured else "no GPU in this run: nothing measured"
)
ax.set_title(
    "Each GEMM version lifts the ceiling that bound the one before\n"
    f"(bars: {SPEC_GPU} ceilings computed from its spec sheet; {measured_note})",
    fontsize=10,
)
ax.legend(fontsize=8, loc="upper left")
save_figure(fig, "09_gemm_ceilings")

# %% [markdown]
# ## 4. Read the compiler's output
#
# `python -m minialexnet.cuda.ptx` compiles every kernel to PTX (no GPU needed, only NVVM)
# and counts the instructions in the basic block that holds most of each kernel's FMAs: the
# inner loop. In the full run's scan below, v3's hot block holds 32 FMAs and 16 shared loads,
# but 87 other instructions around them: Numba's signed 64-bit indices need 64-bit address
# arithmetic and a "did the index go negative? then wrap around" select on every access. v4
# declares every index unsigned 32-bit (no wraparound possible, so no check), uses 1-D shared
# arrays and computes its base offsets once: 64 FMAs, 16 loads and 16 others — twice the
# FMAs for a fifth of the overhead.

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
# The whole step (forward, loss, backward, SGD update) of the `mini` AlexNet on the CPU, with
# both engines (the NumPy reference and the fast Numba engine), and, where there is a GPU,
# with `CudaTrainer`, which keeps every activation, gradient and parameter on the device: the
# batch goes in, the loss comes out. `python -m minialexnet bench --backend cuda` times the
# full-size net at batch 128 beside PyTorch's; docs/facts.md ("GPU notes") quotes PyTorch's
# float32 step (cuDNN, TF32 off) at 20.6 ms on an H200 (a quote, not measured here).
#
# The CPU times are wall times on a machine that other programs may share: the printed load
# average says how shared it was, the min-max range how much that moved the steps, and where
# the two engines' ranges overlap the lesson says so instead of naming a winner
# (`python -m minialexnet bench` times them properly, one child process at a time).

# %%
batch = 8 if QUICK else 64
repeats = 3 if QUICK else 5
step_ms = {}  # name -> wall times of the timed steps, ms
for engine in ("reference", "fast"):
    model = build_alexnet("mini", engine=engine)
    x, y = random_inputs(model, batch)
    optimizer = SGD(model)
    # one untimed warm-up step first (the fast engine compiles its kernels there)
    times = timed_calls(partial(train_step, model, optimizer, x, y), repeats)
    step_ms[f"CPU, {engine} engine"] = 1e3 * np.array(times)
flop = 3 * 2 * summarize(model).total_macs * batch  # forward + two backward GEMMs per layer
if not SIMULATOR:
    trainer = CudaTrainer(model, optimizer)
    times = timed_calls(lambda: trainer.step(x, y), repeats)  # warm-up compiles every kernel
    step_ms[f"GPU ({GPU_NAME}), minialexnet.cuda"] = 1e3 * np.array(times)
load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
print(f"{repeats} timed steps each, wall time; load average {load:.1f} on {os.cpu_count()} cores")
for name, ms in step_ms.items():
    print(
        f"{name:<34} median {np.median(ms):9.1f} ms per step (min {ms.min():.1f}, "
        f"max {ms.max():.1f})   {flop / np.median(ms) / 1e6:6.1f} GFLOP/s"
    )
ref, fast = step_ms["CPU, reference engine"], step_ms["CPU, fast engine"]
if fast.max() < ref.min() or ref.max() < fast.min():
    ratio = np.median(ref) / np.median(fast)
    word = "faster" if ratio > 1 else "slower"
    print(f"the fast engine's step is {max(ratio, 1 / ratio):.1f}x {word} than the reference's")
else:
    print(
        "the two engines' ranges overlap: this run cannot tell them apart "
        "(other processes were sharing the cores)"
    )
if SIMULATOR:
    print("GPU: no GPU here; on one, this cell times CudaTrainer on the same batch.")

# %%
# Only measured times are drawn: no spec-sheet peak, which would compare a measurement
# with a number nobody measured.
fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(step_ms) + 1.6))
names, medians = list(step_ms), [np.median(ms) for ms in step_ms.values()]
spread = np.array(
    [[m - ms.min(), ms.max() - m] for m, ms in zip(medians, step_ms.values(), strict=True)]
)
colors = ["tab:gray", "tab:blue", "tab:green"][: len(step_ms)]
bars = ax.barh(names, medians, color=colors, xerr=spread.T, capsize=4)
ax.bar_label(bars, labels=[f"{m:,.1f} ms" for m in medians], padding=8, fontsize=8)
ax.set_xscale("log")
ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # 1-2-5 ticks, plain numbers
ax.xaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")
ax.xaxis.set_minor_formatter(lambda v, _: "")  # log-axis minor labels would overlap
ax.set_xlim(min(medians) / 3, max(ms.max() for ms in step_ms.values()) * 4)  # room for labels
ax.invert_yaxis()
ax.set_xlabel(
    f"ms per training step, measured: median, whiskers min-max of {repeats} "
    f"(mini AlexNet, batch {batch}; log scale)"
)
ax.set_title(
    "One training step, measured in this run"
    + (" (no GPU here: the CPU engines only)" if SIMULATOR else "")
)
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
