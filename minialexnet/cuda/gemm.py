"""Matrix multiply on the GPU, one version at a time, from naive to tuned.

Every version computes the same batched product, for z in range(batch):

    C[z] (M x N)  =  op(A[z]) (M x K)  @  op(B[z]) (K x N),      op(X) = X or X.T

on C-contiguous float32 device arrays: A is stored (batch, M, K), or (batch, K, M) when
``trans_a``; B is (batch, K, N), or (batch, N, K) when ``trans_b``; C is (batch, M, N).
A transpose costs nothing: the kernel just reads A[k, m] instead of A[m, k]. The layers need
all three forms: forward NN, dW = dY @ X.T (NT), dX = W.T @ dY (TN); ``batch`` is a
convolution's groups. ``gemm(a, b, c, version=...)`` checks the shapes on the host and
launches; ``VERSIONS`` lists what each version changed.

Why each version is faster than the last: count bytes per FLOP (a roofline argument)
---------------------------------------------------------------------------------------
One output element costs K multiply-adds = 2K FLOPs. What limits a kernel is how many bytes
it must move per FLOP, and from where (H100/H200 orders of magnitude: ~60 fp32 TFLOP/s of
FMA units, ~3-5 TB/s from HBM, ~30 TB/s from shared memory in all).

* v1 (naive, one thread per output): each FMA loads one A and one B float from global memory:
  8 bytes per 2 FLOPs, 0.25 FLOP/byte. Caches catch some reuse; still far below the FMA units.
* v2 (shared-memory tiles, T = 16): a block stages a T x T tile of A and of B in shared
  memory and every staged float is used T times: global traffic falls 16x (4 FLOP/byte). Now
  each FMA reads two floats from *shared* memory: 0.25 FLOP/byte of shared bandwidth, the
  new ceiling.
* v3 (register blocking, 4 x 4 outputs per thread): per step of k a thread reads 4 A and 4 B
  values from shared memory into registers and does 16 FMAs with them: 1 FLOP per shared
  byte, 4x v2. A 64 x 64 block tile also halves global traffic again.
* v4 (8 x 8 outputs per thread, 128 x 128 tile, **unsigned 32-bit indices**): 16 shared
  loads feed 64 FMAs (2 FLOP/shared byte, enough to reach the FMA peak in principle). The
  Numba-specific half of this step: with signed 64-bit indices Numba emits, for every array
  access, 64-bit address arithmetic and a "negative index wraps around" select; with unsigned
  32-bit indices, 1-D shared arrays and per-step base offsets computed once, the inner loop
  is almost pure FMAs and shared loads (read the PTX: ``python -m minialexnet.cuda.ptx``).
  The project measured the same recipe at 2x the signed version on an H200.
* v5 (split-K): v4 gives one block per 128 x 128 tile of C. AlexNet's FC layers at batch 128
  (C is 4096 x 128) and every convolution's dW (C is F x C*KH*KW, K = N*OH*OW in the
  hundreds of thousands) have only a few dozen tiles: most of the GPU's ~132 multiprocessors
  sit idle. v5 also cuts K into slices, one block per (tile, slice), writes each slice's
  partial C to a workspace and sums the slices in a second, memory-bound kernel.

The model uses ``BEST`` (v5: it is v4 whenever the grid is already full). The measured
TFLOP/s of every version beside cuBLAS's come from ``python -m minialexnet bench --backend
cuda``; the thread-to-data mappings below are chosen so that neighbouring threads touch
neighbouring addresses (coalesced global loads, conflict-free shared reads).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cuda, float32, int32, uint32

from .common import ceil_div, check_device, register

# Tile shapes. v2: TILE x TILE. v3: 64 x 64 per block, BK3 deep, 4 x 4 per thread.
# v4/v5: 128 x 128 per block, BK4 deep, 8 x 8 per thread. All blocks are 16 x 16 threads.
TILE = 16
BM3, BK3, TM3 = 64, 16, 4
BM4, BK4, TM4 = 128, 8, 8
PAD = 4  # shared rows padded by 4 floats: tile stores by k-contiguous loads avoid bank conflicts
# Shared-array shapes must be compile-time constants, so they are spelled out here.
SHARED2 = (TILE, TILE + 1)  # +1 column: a transposed store then hits 16 different banks
SHARED3 = (BK3, BM3 + PAD)
LD4 = BM4 + PAD  # the row length of v4's 1-D shared tiles
SHARED4 = BK4 * LD4
ACC4 = TM4 * TM4  # accumulators per thread


@dataclass(frozen=True)
class Version:
    number: int
    name: str
    change: str


VERSIONS = {
    1: Version(1, "naive", "one thread per output, A and B read from global memory"),
    2: Version(2, "shared tiles", "16x16 tiles staged in shared memory, reused 16 times"),
    3: Version(3, "register blocking", "64x64 block tile, 4x4 outputs per thread in registers"),
    4: Version(4, "unsigned 128x128", "8x8 per thread, 32-bit unsigned indices, hoisted offsets"),
    5: Version(5, "split-K", "v4 plus K cut into slices so that skinny shapes fill the GPU"),
}
BEST = 5


@cuda.jit(device=True, inline=True)
def _at(z, r, c, rows, cols, trans):
    """Flat index of op(X[z])[r, c], op(X) being rows x cols (X stored cols x rows if trans)."""
    if trans:
        return (z * cols + c) * rows + r
    return (z * rows + r) * cols + c


# ----------------------------------------------------------------------------------------
# v1 — naive: one thread per element of C, straight from global memory.
# ----------------------------------------------------------------------------------------
def _make_v1(trans_a: bool, trans_b: bool) -> Any:
    @cuda.jit
    def gemm_v1(A, B, C, M, N, K):
        """Grid (ceil(N/16), ceil(M/16), batch) of 16 x 16 threads; x runs along N."""
        j = int32(cuda.blockIdx.x) * int32(cuda.blockDim.x) + int32(cuda.threadIdx.x)
        i = int32(cuda.blockIdx.y) * int32(cuda.blockDim.y) + int32(cuda.threadIdx.y)
        z = int32(cuda.blockIdx.z)
        if i < M and j < N:
            acc = float32(0)
            for k in range(K):
                acc += A[_at(z, i, k, M, K, trans_a)] * B[_at(z, k, j, K, N, trans_b)]
            C[(z * M + i) * N + j] = acc

    return gemm_v1


# ----------------------------------------------------------------------------------------
# v2 — shared-memory tiles. What changed: the block loads a 16 x 16 tile of op(A) and of
# op(B) into shared memory once, then every thread reads them 16 times from there. Global
# traffic drops 16x. Threads that fall outside C still help load and still reach both
# barriers (a thread that returned early would leave syncthreads() waiting for it).
# ----------------------------------------------------------------------------------------
def _make_v2(trans_a: bool, trans_b: bool) -> Any:
    @cuda.jit
    def gemm_v2(A, B, C, M, N, K):
        """Grid (ceil(N/16), ceil(M/16), batch) of 16 x 16 threads."""
        As = cuda.shared.array(SHARED2, float32)  # As[m, k]
        Bs = cuda.shared.array(SHARED2, float32)  # Bs[k, n]
        tx, ty = int32(cuda.threadIdx.x), int32(cuda.threadIdx.y)
        row0, col0 = int32(cuda.blockIdx.y) * TILE, int32(cuda.blockIdx.x) * TILE
        z = int32(cuda.blockIdx.z)
        acc = float32(0)
        for k0 in range(0, K, TILE):
            # Which element a thread loads follows the storage order, so that neighbouring
            # threads (tx) read neighbouring addresses: stored (K, M) means m is contiguous.
            r, k = (tx, ty) if trans_a else (ty, tx)
            value = float32(0)
            if row0 + r < M and k0 + k < K:
                value = A[_at(z, row0 + r, k0 + k, M, K, trans_a)]
            As[r, k] = value
            k, c = (tx, ty) if trans_b else (ty, tx)
            value = float32(0)
            if k0 + k < K and col0 + c < N:
                value = B[_at(z, k0 + k, col0 + c, K, N, trans_b)]
            Bs[k, c] = value
            cuda.syncthreads()
            for kk in range(TILE):
                acc += As[ty, kk] * Bs[kk, tx]
            cuda.syncthreads()  # nobody overwrites the tiles while others still read them
        if row0 + ty < M and col0 + tx < N:
            C[(z * M + row0 + ty) * N + col0 + tx] = acc

    return gemm_v2


# ----------------------------------------------------------------------------------------
# v3 — register blocking. What changed: a 64 x 64 block tile and 4 x 4 outputs per thread.
# Per step of k a thread loads 4 values of A and 4 of B from shared memory into registers and
# does 16 FMAs with them (v2: 2 shared loads per FMA). Thread (tx, ty) owns rows ty + 16*i and
# columns tx + 16*j: neighbouring threads read neighbouring shared words (no bank conflicts)
# and write neighbouring columns of C (coalesced).
# ----------------------------------------------------------------------------------------
def _make_v3(trans_a: bool, trans_b: bool) -> Any:
    @cuda.jit
    def gemm_v3(A, B, C, M, N, K):
        """Grid (ceil(N/64), ceil(M/64), batch) of 16 x 16 threads."""
        As = cuda.shared.array(SHARED3, float32)  # As[k, m]
        Bs = cuda.shared.array(SHARED3, float32)  # Bs[k, n]
        acc = cuda.local.array((TM3, TM3), float32)
        a = cuda.local.array(TM3, float32)
        b = cuda.local.array(TM3, float32)
        tx, ty = int32(cuda.threadIdx.x), int32(cuda.threadIdx.y)
        tid = ty * 16 + tx
        row0, col0 = int32(cuda.blockIdx.y) * BM3, int32(cuda.blockIdx.x) * BM3
        z = int32(cuda.blockIdx.z)
        for i in range(TM3):
            for j in range(TM3):
                acc[i, j] = float32(0)
        for k0 in range(0, K, BK3):
            for step in range(BM3 * BK3 // 256):  # 1024 elements per tile, 4 per thread
                e = tid + step * 256
                m, k = (e % BM3, e // BM3) if trans_a else (e // BK3, e % BK3)
                value = float32(0)
                if row0 + m < M and k0 + k < K:
                    value = A[_at(z, row0 + m, k0 + k, M, K, trans_a)]
                As[k, m] = value
                n, k = (e // BK3, e % BK3) if trans_b else (e % BM3, e // BM3)
                value = float32(0)
                if k0 + k < K and col0 + n < N:
                    value = B[_at(z, k0 + k, col0 + n, K, N, trans_b)]
                Bs[k, n] = value
            cuda.syncthreads()
            for k in range(BK3):
                for i in range(TM3):
                    a[i] = As[k, ty + 16 * i]
                    b[i] = Bs[k, tx + 16 * i]
                for i in range(TM3):
                    for j in range(TM3):
                        acc[i, j] += a[i] * b[j]
            cuda.syncthreads()
        for i in range(TM3):
            row = row0 + ty + 16 * i
            for j in range(TM3):
                col = col0 + tx + 16 * j
                if row < M and col < N:
                    C[(z * M + row) * N + col] = acc[i, j]

    return gemm_v3


# ----------------------------------------------------------------------------------------
# v4 — 8 x 8 outputs per thread, 128 x 128 block tile, unsigned 32-bit indices.
# What changed, and why it matters in Numba: every index is a uint32 (threadIdx is one
# already; constants are wrapped), shared tiles are 1-D arrays, and each thread's offsets
# into the tiles and into A and B are computed once, outside the k loop. Unsigned indices
# can't be negative, so Numba drops its wraparound check on every access; the inner loop
# becomes 16 shared loads and 64 FMAs with almost no integer work around them.
# The same kernel serves v5: blockIdx.z = batch * splits + split picks a slice of K, and
# the block writes its partial product to slice ``split`` of ``C`` (a workspace) when
# splits > 1. With splits == 1, k_per_split == K and this is plain v4.
# ----------------------------------------------------------------------------------------
def _make_v4(trans_a: bool, trans_b: bool) -> Any:
    @cuda.jit
    def gemm_v4(A, B, C, M, N, K, k_per_split, splits):
        """Grid (ceil(N/128), ceil(M/128), batch * splits) of 16 x 16 threads.

        C has shape (batch * splits, M, N). K slices are k_per_split long (a multiple of BK4).
        """
        As = cuda.shared.array(SHARED4, float32)  # As[k * LD4 + m]
        Bs = cuda.shared.array(SHARED4, float32)  # Bs[k * LD4 + n]
        acc = cuda.local.array(ACC4, float32)
        a = cuda.local.array(TM4, float32)
        b = cuda.local.array(TM4, float32)
        a_src = cuda.local.array(4, uint32)  # this thread's 4 loads per tile: flat offsets
        b_src = cuda.local.array(4, uint32)  # at the first k of the slice
        a_dst = cuda.local.array(4, uint32)  # ... and where they go in the shared tile
        b_dst = cuda.local.array(4, uint32)
        a_k = cuda.local.array(4, uint32)  # ... and the k within the tile they belong to
        b_k = cuda.local.array(4, uint32)
        m_, n_, k_ = uint32(M), uint32(N), uint32(K)
        ld = uint32(LD4)
        # threadIdx and blockIdx are signed int32 in Numba: convert them once, here.
        tx, ty = uint32(cuda.threadIdx.x), uint32(cuda.threadIdx.y)
        tid = ty * uint32(16) + tx
        row0 = uint32(cuda.blockIdx.y) * uint32(BM4)
        col0 = uint32(cuda.blockIdx.x) * uint32(BM4)
        zs = uint32(cuda.blockIdx.z)
        z, split = zs // uint32(splits), zs % uint32(splits)
        k_begin = split * uint32(k_per_split)
        k_end = min(k_begin + uint32(k_per_split), k_)
        a_ok = uint32(0)  # bit s set: load s of A falls inside M (likewise b_ok for N)
        b_ok = uint32(0)
        for s in range(4):
            e = tid + uint32(s) * uint32(256)
            if trans_a:  # stored (K, M): walk m fastest
                m, k = e % uint32(BM4), e // uint32(BM4)
                a_src[s] = (z * k_ + k_begin + k) * m_ + row0 + m
            else:  # stored (M, K): walk k fastest
                m, k = e // uint32(BK4), e % uint32(BK4)
                a_src[s] = (z * m_ + row0 + m) * k_ + k_begin + k
            a_dst[s], a_k[s] = k * ld + m, k
            if row0 + m < m_:
                a_ok |= uint32(1) << uint32(s)
            if trans_b:  # stored (N, K): walk k fastest
                n, k = e // uint32(BK4), e % uint32(BK4)
                b_src[s] = (z * n_ + col0 + n) * k_ + k_begin + k
            else:  # stored (K, N): walk n fastest
                n, k = e % uint32(BM4), e // uint32(BM4)
                b_src[s] = (z * k_ + k_begin + k) * n_ + col0 + n
            b_dst[s], b_k[s] = k * ld + n, k
            if col0 + n < n_:
                b_ok |= uint32(1) << uint32(s)
        for i in range(ACC4):
            acc[i] = float32(0)
        # One step of the tile loop advances every A offset by BK4 columns of op(A):
        a_step = uint32(BK4) * (m_ if trans_a else uint32(1))
        b_step = uint32(BK4) * (uint32(1) if trans_b else n_)
        steps = (k_end - k_begin + uint32(BK4 - 1)) // uint32(BK4) if k_end > k_begin else uint32(0)
        for t in range(uint32(steps)):
            k0 = k_begin + t * uint32(BK4)
            for s in range(4):
                value = float32(0)
                if (a_ok >> uint32(s)) & uint32(1) and k0 + a_k[s] < k_end:
                    value = A[a_src[s] + t * a_step]
                As[a_dst[s]] = value
                value = float32(0)
                if (b_ok >> uint32(s)) & uint32(1) and k0 + b_k[s] < k_end:
                    value = B[b_src[s] + t * b_step]
                Bs[b_dst[s]] = value
            cuda.syncthreads()
            for k in range(BK4):
                a_row = uint32(k) * ld + ty  # hoisted: one add per load below
                b_row = uint32(k) * ld + tx
                for i in range(TM4):
                    a[i] = As[a_row + uint32(16 * i)]
                    b[i] = Bs[b_row + uint32(16 * i)]
                for i in range(TM4):
                    for j in range(TM4):
                        acc[i * TM4 + j] += a[i] * b[j]
            cuda.syncthreads()
        out = zs * m_ * n_
        for i in range(TM4):
            row = row0 + ty + uint32(16 * i)
            for j in range(TM4):
                col = col0 + tx + uint32(16 * j)
                if row < m_ and col < n_:
                    C[out + row * n_ + col] = acc[i * TM4 + j]

    return gemm_v4


@register("void(float32[::1], float32[::1], int64, int64)")
@cuda.jit
def sum_slices(partial, C, slice_size, splits):
    """C[z, e] = sum_s partial[z * splits + s, e] for the flat (batch * splits, M * N) partial.

    One thread per element of C (grid of ceil(C.size / 256) blocks of 256 threads); the
    slices are summed in a fixed order, so the result does not depend on timing.
    """
    i = cuda.grid(1)
    if i < C.size:
        z, e = i // slice_size, i % slice_size
        total = float32(0)
        for s in range(splits):
            total += partial[(z * splits + s) * slice_size + e]
        C[i] = total


_MAKERS: dict[int, Callable[[bool, bool], Any]] = {
    1: _make_v1,
    2: _make_v2,
    3: _make_v3,
    4: _make_v4,
    5: _make_v4,
}


@functools.cache
def kernel(version: int, trans_a: bool, trans_b: bool) -> Any:
    """The compiled-on-first-launch kernel of a version for one transpose pattern."""
    return _MAKERS[version](trans_a, trans_b)


# ----------------------------------------------------------------------------------------
# Host side: checks, the split-K choice, launches.
# ----------------------------------------------------------------------------------------
def _as_batched(fn: str, name: str, x: Any) -> tuple[int, int, int]:
    check_device(fn, name, x)
    if x.ndim == 2:
        return (1, *x.shape)
    if x.ndim == 3:
        return tuple(x.shape)
    raise ValueError(
        f"{fn}: {name} must be 2-D (rows, cols) or 3-D (batch, rows, cols), got "
        f"shape {tuple(x.shape)}"
    )


def gemm_shape(a: Any, b: Any, c: Any, trans_a: bool, trans_b: bool) -> tuple[int, int, int, int]:
    """Check the operands of ``gemm`` and return (batch, M, N, K), or raise naming the argument."""
    fn = "gemm"
    ba, a0, a1 = _as_batched(fn, "a", a)
    bb, b0, b1 = _as_batched(fn, "b", b)
    bc, M, N = _as_batched(fn, "c", c)
    (Ma, K) = (a1, a0) if trans_a else (a0, a1)
    (Kb, Nb) = (b1, b0) if trans_b else (b0, b1)
    if not ba == bb == bc:
        raise ValueError(f"{fn}: a, b, c must have the same batch size, got {ba}, {bb}, {bc}")
    if Ma != M or Nb != N or Kb != K:
        raise ValueError(
            f"{fn}: op(a) is {Ma}x{K} and op(b) is {Kb}x{Nb} (trans_a={trans_a}, "
            f"trans_b={trans_b}); they need op(a).cols == op(b).rows and c of shape "
            f"{Ma}x{Nb}, got c {M}x{N}"
        )
    return ba, M, N, K


def choose_splits(batch: int, M: int, N: int, K: int, multiprocessors: int) -> int:
    """v5's K slices: enough blocks for two per multiprocessor, slices of >= 512 k, <= 64."""
    tiles = batch * ceil_div(M, BM4) * ceil_div(N, BM4)
    if tiles >= multiprocessors:
        return 1
    want = ceil_div(2 * multiprocessors, tiles)
    return max(1, min(want, K // 512, 64))


@functools.cache
def multiprocessor_count() -> int:
    """The current GPU's number of SMs (132 on an H100/H200; the simulator reports none)."""
    return int(getattr(cuda.get_current_device(), "MULTIPROCESSOR_COUNT", 132))


class _Workspace:
    """One device buffer for split-K partial sums, grown when a larger one is needed.

    Allocating on the device is slow (cudaMalloc synchronises); a training step calls gemm
    dozens of times, so the buffer is kept between calls.
    """

    def __init__(self) -> None:
        self.buffer: Any = None

    def get(self, size: int) -> Any:
        if self.buffer is None or self.buffer.size < size:
            self.buffer = cuda.device_array(size, dtype=np.float32)
        return self.buffer[:size]


_workspace = _Workspace()


def gemm(
    a: Any,
    b: Any,
    c: Any,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    version: int = BEST,
    splits: int | None = None,
) -> None:
    """c[z] = op(a[z]) @ op(b[z]) into the device array ``c`` (overwritten), on the device.

    a, b, c: float32, C-contiguous device arrays, 2-D or 3-D (batch first), shapes as in the
    module docstring. ``version``: 1..5 (``VERSIONS``). ``splits`` (v5 only): how many slices
    to cut K into; None lets ``choose_splits`` decide from the GPU's multiprocessor count.
    Any M, N, K >= 1 works: every kernel guards the edges of its tiles.
    """
    if version not in VERSIONS:
        raise ValueError(f"gemm: version must be one of {sorted(VERSIONS)}, got {version!r}")
    batch, M, N, K = gemm_shape(a, b, c, trans_a, trans_b)
    A, B, C = a.ravel(), b.ravel(), c.ravel()
    threads = (16, 16)
    if version in (1, 2, 3):
        tile = TILE if version < 3 else BM3
        grid = (ceil_div(N, tile), ceil_div(M, tile), batch)
        kernel(version, trans_a, trans_b)[grid, threads](A, B, C, M, N, K)
        return
    grid_xy = (ceil_div(N, BM4), ceil_div(M, BM4))
    if version == 4:
        splits = 1
    elif splits is None:
        splits = choose_splits(batch, M, N, K, multiprocessor_count())
    elif isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ValueError(f"gemm: splits must be an int >= 1, got {splits!r}")
    k_per_split = ceil_div(ceil_div(K, splits), BK4) * BK4  # a multiple of the tile depth
    splits = ceil_div(K, k_per_split)  # no empty slices
    run = kernel(4, trans_a, trans_b)
    if splits == 1:
        run[(*grid_xy, batch), threads](A, B, C, M, N, K, K, 1)
        return
    partial = _workspace.get(batch * splits * M * N)
    run[(*grid_xy, batch * splits), threads](A, B, partial, M, N, K, k_per_split, splits)
    sum_slices[ceil_div(C.size, 256), 256](partial, C, M * N, splits)


def gemm_flops(batch: int, M: int, N: int, K: int) -> int:
    """2 * batch * M * N * K: one multiply and one add per term."""
    return 2 * batch * M * N * K


def reference(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool) -> np.ndarray:
    """The float64 NumPy product the kernels are checked against (host arrays, same layout)."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    if a64.ndim == 2:
        a64, b64 = a64[None], b64[None]
    op_a = a64.transpose(0, 2, 1) if trans_a else a64
    op_b = b64.transpose(0, 2, 1) if trans_b else b64
    return op_a @ op_b
